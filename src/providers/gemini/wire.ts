/**
 * The Gemini API's answers (generateContent, streamGenerateContent, batchEmbedContents), as zod schemas. Loose
 * objects: fields Heimdall does not translate are allowed and left behind.
 */
import { z } from 'zod';

export const part = z.looseObject({
  text: z.string().optional(),
  /** A thought summary (thinking models, with includeThoughts): the answer's reasoning_content, not its text. */
  thought: z.boolean().optional(),
  /**
   * The model's thinking, sealed: the next request must carry it back on the same part (a functionCall's, or the
   * last part's when there are no calls) for a thinking model to keep its reasoning across a tool round trip.
   */
  thoughtSignature: z.string().optional(),
  functionCall: z.looseObject({ name: z.string(), args: z.record(z.string(), z.unknown()).optional(), id: z.string().optional() }).optional(),
});

const logprobsCandidate = z.looseObject({
  token: z.string().optional(),
  tokenId: z.number().optional(),
  logProbability: z.number().optional(),
});

/** One entry per decoding step in each list (with responseLogprobs). */
export const logprobsResult = z.looseObject({
  chosenCandidates: z.array(logprobsCandidate).optional(),
  topCandidates: z.array(z.looseObject({ candidates: z.array(logprobsCandidate).optional() })).optional(),
});

export const candidate = z.looseObject({
  content: z.looseObject({ role: z.string().optional(), parts: z.array(part).optional() }).optional(),
  finishReason: z.string().optional(),
  index: z.number().optional(),
  logprobsResult: logprobsResult.optional(),
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
export type LogprobsResult = z.infer<typeof logprobsResult>;

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
