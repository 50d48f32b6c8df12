/**
 * The configured providers, and the resolution of a "provider/model" name to one of them.
 */
import type { Config, ProviderConfig } from '../config/schema.js';
import { resolveEnvRefs } from '../config/load.js';
import { Errors, HeimdallError } from '../errors.js';
import { MockProvider } from './mock.js';
import { OpenAIProvider } from './openai.js';
import type { Provider } from './provider.js';
import { UnavailableProvider } from './unavailable.js';

export interface ResolvedModel {
  provider: Provider;
  /** The upstream model name. */
  model: string;
}

export class ProviderRegistry {
  private readonly providers = new Map<string, Provider>();

  /**
   * A provider whose env reference is not set is registered as unavailable rather than stopping the gateway: its
   * requests get a 503 naming the variable, and every other provider works (so the default config starts
   * offline, without an OpenAI key).
   */
  /** `decorate` wraps every provider (metrics use it to time upstream calls and count tokens). */
  constructor(
    config: Config['providers'],
    env: NodeJS.ProcessEnv = process.env,
    warn: (message: string) => void = () => {},
    decorate: (provider: Provider) => Provider = (provider) => provider,
  ) {
    for (const [name, entry] of Object.entries(config)) {
      let provider: Provider;
      try {
        provider = create(name, resolveEnvRefs(entry, `providers.${name}`, env));
      } catch (err) {
        if (!(err instanceof HeimdallError) || err.code !== Errors.CONFIG_ENV.code) throw err;
        warn(`provider ${name} is unavailable: ${err.message}`);
        provider = new UnavailableProvider(name, entry.models, Errors.PROVIDER_UNAVAILABLE(name, err.message));
      }
      this.providers.set(name, decorate(provider));
    }
  }

  /** "openai/gpt-4o-mini" -> the openai provider and "gpt-4o-mini". Model names may contain further slashes. */
  resolve(name: unknown): ResolvedModel {
    if (name === undefined || name === null || name === '') throw Errors.MODEL_MISSING();
    if (typeof name !== 'string') throw Errors.BAD_REQUEST('"model" must be a string such as "openai/gpt-4o-mini"');
    const slash = name.indexOf('/');
    if (slash <= 0 || slash === name.length - 1) throw Errors.MODEL_FORMAT(name);
    const providerName = name.slice(0, slash);
    const provider = this.providers.get(providerName);
    if (provider === undefined) throw Errors.PROVIDER_UNKNOWN(providerName, [...this.providers.keys()]);
    const model = name.slice(slash + 1);
    if (provider.models !== undefined && !provider.models.includes(model)) {
      throw Errors.MODEL_UNKNOWN(name, provider.models.map((m) => `${providerName}/${m}`));
    }
    return { provider, model };
  }

  /** "provider/model" for every model named in the config. */
  listModels(): { id: string; owned_by: string }[] {
    const out: { id: string; owned_by: string }[] = [];
    for (const provider of this.providers.values()) {
      for (const model of provider.models ?? []) out.push({ id: `${provider.name}/${model}`, owned_by: provider.name });
    }
    return out;
  }

  async close(): Promise<void> {
    await Promise.all([...this.providers.values()].map((p) => p.close()));
  }
}

function create(name: string, config: ProviderConfig): Provider {
  switch (config.type) {
    case 'openai':
      return new OpenAIProvider(name, config);
    case 'mock':
      return new MockProvider(name, config);
  }
}
