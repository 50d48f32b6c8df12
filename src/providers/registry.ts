/**
 * The configured providers, and the resolution of a "provider/model" name to one of them.
 */
import type { Config, OpenAIProviderConfig, ProviderConfig } from '../config/schema.js';
import { resolveEnvRefs } from '../config/load.js';
import { Errors, HeimdallError } from '../errors.js';
import { createAnthropicProvider } from './anthropic/provider.js';
import { createAzureProvider } from './azure.js';
import { createGeminiProvider } from './gemini/provider.js';
import { basePath, upstreamSettings } from './http/settings.js';
import { MockProvider } from './mock.js';
import { OpenAIProvider } from './openai.js';
import type { KeyState, Provider } from './provider.js';
import { UnavailableProvider } from './unavailable.js';

export interface ResolvedModel {
  provider: Provider;
  /** The upstream model name. */
  model: string;
}

export type ProviderType = ProviderConfig['type'];

/** One key of one provider, as an operator may see it (never the key). */
export interface ProviderKeyState extends KeyState {
  provider: string;
}

export class ProviderRegistry {
  private readonly providers = new Map<string, Provider>();
  private readonly types = new Map<string, ProviderType>();
  /** Per provider with a `keys` list: each key kept's place in it, from 1 (a key whose env is unset is left out). */
  private readonly keyPositions = new Map<string, number[]>();

  /**
   * A provider whose env reference is not set is registered as unavailable rather than stopping the gateway: its
   * requests get a 503 naming the variable, and every other provider works (so the default config starts
   * offline, without an OpenAI key). Of several keys, those whose variable is unset are left out, with a warning.
   *
   * `decorate` wraps every provider (metrics use it to time upstream calls and count tokens).
   */
  constructor(
    config: Config['providers'],
    env: NodeJS.ProcessEnv = process.env,
    warn: (message: string) => void = () => {},
    decorate: (provider: Provider) => Provider = (provider) => provider,
  ) {
    for (const [name, entry] of Object.entries(config)) {
      let provider: Provider;
      try {
        const positions: number[] = [];
        provider = create(name, resolveProviderEnv(name, entry, env, warn, positions));
        if (positions.length > 0) this.keyPositions.set(name, positions);
      } catch (err) {
        if (!(err instanceof HeimdallError) || err.code !== Errors.CONFIG_ENV.code) throw err;
        warn(`provider ${name} is unavailable: ${err.message}`);
        provider = new UnavailableProvider(name, entry.models, Errors.PROVIDER_UNAVAILABLE(name, err.message));
      }
      this.providers.set(name, decorate(provider));
      this.types.set(name, entry.type);
    }
  }

  /**
   * "openai/gpt-4o-mini" -> the openai provider and "gpt-4o-mini". Model names may contain further slashes. With a
   * `defaultProvider` (the drop-in SDK routes), a name whose prefix is not a configured provider ("gpt-4o-mini",
   * "meta-llama/Llama-3-8b") is a model of that provider.
   */
  resolve(name: unknown, defaultProvider?: string): ResolvedModel {
    if (name === undefined || name === null || name === '') throw Errors.MODEL_MISSING();
    if (typeof name !== 'string') throw Errors.BAD_REQUEST('"model" must be a string such as "openai/gpt-4o-mini"');
    const slash = name.indexOf('/');
    let providerName: string;
    let model: string;
    if (slash > 0 && slash < name.length - 1 && (defaultProvider === undefined || this.providers.has(name.slice(0, slash)))) {
      providerName = name.slice(0, slash);
      model = name.slice(slash + 1);
    } else if (defaultProvider !== undefined) {
      providerName = defaultProvider;
      model = name;
    } else {
      throw Errors.MODEL_FORMAT(name);
    }
    const provider = this.providers.get(providerName);
    if (provider === undefined) throw Errors.PROVIDER_UNKNOWN(providerName, [...this.providers.keys()]);
    if (provider.models !== undefined && !provider.models.includes(model)) {
      throw Errors.MODEL_UNKNOWN(`${providerName}/${model}`, provider.models.map((m) => `${providerName}/${m}`));
    }
    return { provider, model };
  }

  /**
   * The provider a drop-in SDK route sends bare model names to: the one named like the SDK's vendor, else the first
   * configured provider of one of `types`, else the first provider of all.
   */
  defaultFor(name: string, types: readonly ProviderType[]): string | undefined {
    if (this.providers.has(name)) return name;
    for (const [provider, type] of this.types) if (types.includes(type)) return provider;
    return this.providers.keys().next().value;
  }

  /** "provider/model" for every model named in the config. */
  listModels(): { id: string; owned_by: string }[] {
    const out: { id: string; owned_by: string }[] = [];
    for (const provider of this.providers.values()) {
      for (const model of provider.models ?? []) out.push({ id: `${provider.name}/${model}`, owned_by: provider.name });
    }
    return out;
  }

  /**
   * Every provider's keys, providers in config order: each key's place in its provider's configured `keys` list
   * (one left out for an unset env variable keeps its number, and is not listed), and whether it rests.
   */
  keyStates(): ProviderKeyState[] {
    const out: ProviderKeyState[] = [];
    for (const [name, provider] of this.providers) {
      const positions = this.keyPositions.get(name);
      for (const state of provider.keyStates?.() ?? []) {
        out.push({ provider: name, ...state, position: positions?.[state.position - 1] ?? state.position });
      }
    }
    return out;
  }

  async close(): Promise<void> {
    await Promise.all([...this.providers.values()].map((p) => p.close()));
  }
}

/**
 * The entry with its env references resolved. Keys are resolved one by one: an unset variable leaves that key out
 * (with a warning) as long as another key remains. `positions` receives each kept key's place in `keys`, from 1.
 */
function resolveProviderEnv(name: string, entry: ProviderConfig, env: NodeJS.ProcessEnv, warn: (message: string) => void, positions: number[]): ProviderConfig {
  if (entry.type === 'mock' || entry.keys === undefined) return resolveEnvRefs(entry, `providers.${name}`, env);
  const { keys, ...rest } = entry;
  const resolved = resolveEnvRefs(rest, `providers.${name}`, env);
  const usable: typeof keys = [];
  let firstError: HeimdallError | undefined;
  keys.forEach((k, i) => {
    try {
      usable.push({ ...k, key: resolveEnvRefs(k.key, `providers.${name}.keys[${i}].key`, env) });
      positions.push(i + 1);
    } catch (err) {
      if (!(err instanceof HeimdallError)) throw err;
      firstError ??= err;
      warn(`provider ${name}: key ${i} is left out: ${err.message}`);
    }
  });
  if (usable.length === 0) throw firstError as HeimdallError;
  return { ...resolved, keys: usable } as ProviderConfig;
}

function create(name: string, config: ProviderConfig): Provider {
  switch (config.type) {
    case 'mock':
      return new MockProvider(name, config);
    case 'azure':
      return createAzureProvider(name, config);
    case 'anthropic':
      return createAnthropicProvider(name, config);
    case 'gemini':
      return createGeminiProvider(name, config);
    default:
      return openaiCompatible(name, config);
  }
}

function openaiCompatible(name: string, config: OpenAIProviderConfig): Provider {
  const url = new URL(config.base_url);
  return new OpenAIProvider(name, config.models, upstreamSettings(name, config, url.origin), OpenAIProvider.bearer(basePath(url)));
}
