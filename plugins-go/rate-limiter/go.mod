module github.com/heimdall-gateway/heimdall/plugins-go/rate-limiter

go 1.19

require github.com/heimdall-gateway/heimdall/sdk/go v0.0.0-00010101000000-000000000000

// The SDK comes from this repository, so the plugin builds offline and always against the SDK next to it.
replace github.com/heimdall-gateway/heimdall/sdk/go => ../../sdk/go
