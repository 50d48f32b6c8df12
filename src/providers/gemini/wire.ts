/**
 * The Gemini API's answers (generateContent, streamGenerateContent, batchEmbedContents), as zod schemas. Loose
 * objects: fields Heimdall does not translate are allowed and left behind.
 */
import { z } from 'zod';

export const part = z.looseObject({
  text: z.string().optional(),
  /** A thought summary (thinking models): not part of the answer. */
  thought: z.boolean().optional(),
  functionCall: z.looseObject({ name: z.string(), args: z.record(z.string(), z.unknown()).optional(), id: z.string().optional() }).optional(),
});

export const candidate = z.looseObject({
  content: z.looseObject({ role: z.string().optional(), parts: z.array(part).optional() }).optional(),
  finishReason: z.string().optional(),
  index: z.number().optional(),
});

export const usageMetadata = z.looseObject({
  promptTokenCount: z.number().optional(),
  candidatesTokenCount: z.number().optional(),
  thoughtsTokenCount: z.number().optional(),
  totalTokenCount: z.number().optional(),
  cachedContentTokenCount: z.number().optional(),
});

export const generateContentResponse = z.looseObject({
  candidates: z.array(candidate).optional(),
  usageMetadata: usageMetadata.optional(),
  modelVersion: z.string().optional(),
  responseId: z.string().optional(),
  promptFeedback: z.looseObject({ blockReason: z.string().optional() }).optional(),
});
export type GenerateContentResponse = z.infer<typeof generateContentResponse>;
export type Candidate = z.infer<typeof candidate>;
export type UsageMetadata = z.infer<typeof usageMetadata>;

export const batchEmbedResponse = z.looseObject({
  embeddings: z.array(z.looseObject({ values: z.array(z.number()) })),
});

/** Gemini's finish reasons and the OpenAI finish reasons they mean; anything else is "stop". */
export const FINISH_REASONS: Record<string, string> = {
  STOP: 'stop',
  MAX_TOKENS: 'length',
  SAFETY: 'content_filter',
  RECITATION: 'content_filter',
  BLOCKLIST: 'content_filter',
  PROHIBITED_CONTENT: 'content_filter',
  SPII: 'content_filter',
  IMAGE_SAFETY: 'content_filter',
};
