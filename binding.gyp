# Builds the example plugins in plugins-c/ as plain shared libraries (not Node addons):
#   Linux: build/Release/<name>.so      macOS: build/Release/<name>.dylib
# Build with: npx node-gyp rebuild
{
  "target_defaults": {
    # No "lib" prefix and a fixed extension, so the path in config.json is predictable.
    "product_prefix": "",
    "include_dirs": ["native/include", "plugins-c/include"],
    # Only the symbols marked HEIMDALL_EXPORT leave the library.
    "cflags": ["-fPIC", "-fvisibility=hidden", "-Wall", "-Wextra"],
    "configurations": {
      "Release": {
        "cflags!": ["-O3"],
        "cflags": ["-O2"]
      }
    },
    # node's common.gypi asks Xcode for -O3; a late (target_conditions) setting is the one that overrides it.
    "target_conditions": [
      ["OS=='mac'", {
        "configurations": {"Release": {"xcode_settings": {"GCC_OPTIMIZATION_LEVEL": "2"}}}
      }]
    ],
    "conditions": [
      ["OS=='mac'", {
        "product_extension": "dylib",
        "xcode_settings": {
          "GCC_SYMBOLS_PRIVATE_EXTERN": "YES",
          "WARNING_CFLAGS": ["-Wall", "-Wextra"]
        }
      }, {
        "product_extension": "so"
      }]
    ]
  },
  # "type" is set per target: node-gyp's own target_defaults say "loadable_module" (a .node addon) and win over
  # a "type" given here.
  "targets": [
    {"target_name": "transform", "type": "shared_library", "sources": ["plugins-c/transform.c"]},
    {"target_name": "validate", "type": "shared_library", "sources": ["plugins-c/validate.c"]},
    {"target_name": "cache", "type": "shared_library", "sources": ["plugins-c/cache.c"]},
    {"target_name": "audit_log", "type": "shared_library", "sources": ["plugins-c/audit_log.c"]},
    {"target_name": "header_rewrite", "type": "shared_library", "sources": ["plugins-c/header_rewrite.c"]},
    # The child process of the "isolated" mode: it loads a plugin and serves the gateway's calls over a socket.
    # An executable: no extension (a target's own setting wins over target_defaults').
    {
      "target_name": "heimdall-plugin-host",
      "type": "executable",
      "product_extension": "",
      "sources": ["native/plugin-host/host.c"],
      "cflags_c": ["-std=c11"],
      "xcode_settings": {"GCC_C_LANGUAGE_STANDARD": "c11"},
      "conditions": [
        # dlopen and pthreads live in libdl and libpthread before glibc 2.34 (and the flags are harmless after).
        ["OS=='linux'", {"libraries": ["-ldl", "-lpthread"]}]
      ]
    }
  ]
}
