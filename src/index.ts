/**
 * Heimdall as a library: build a gateway from a config, in-process.
 */
export { createGateway, type Gateway, type GatewayOptions } from './server/app.js';
export { loadConfigFile, parseConfig, type LoadedConfig } from './config/load.js';
export type { Config, PluginConfig, ProviderConfig } from './config/schema.js';
export { Errors, HeimdallError } from './errors.js';
export type { Plugin, PluginInfo, AbiError } from './plugins/plugin.js';
export { HOST_ABI_MAJOR, HOST_ABI_MINOR } from './plugins/abi.js';
