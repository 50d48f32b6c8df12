module github.com/heimdall-gateway/heimdall/sdk/go

go 1.19
