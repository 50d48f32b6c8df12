/**
 * Azure OpenAI: the OpenAI wire format, addressed by deployment
 * (`{base_url}/openai/deployments/{deployment}/chat/completions?api-version=...`) and keyed with an `api-key`
 * header. A model maps to a deployment through `deployments`; an unmapped model is taken as the deployment's name.
 */
import type { AzureProviderConfig } from '../config/schema.js';
import { basePath, upstreamSettings } from './http/settings.js';
import { OpenAIProvider } from './openai.js';

export function createAzureProvider(name: string, config: AzureProviderConfig): OpenAIProvider {
  const url = new URL(config.base_url);
  const root = basePath(url);
  const version = encodeURIComponent(config.api_version);
  return new OpenAIProvider(name, config.models, upstreamSettings(name, config, url.origin), {
    path: (operation, model) => {
      const deployment = encodeURIComponent(config.deployments[model] ?? model);
      return `${root}/openai/deployments/${deployment}/${operation}?api-version=${version}`;
    },
    auth: (key) => ({ 'api-key': key }),
  });
}
