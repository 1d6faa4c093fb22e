package config

import (
	"fmt"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
)

// ClientOptions are the options the worker and the starter connect to
// Temporal with. The address and namespace are this configuration's
// (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE or the flags); the rest comes from
// the SDK's environment configuration, as every Temporal tool reads it:
// TEMPORAL_API_KEY (Temporal Cloud; turns TLS on), TEMPORAL_TLS,
// TEMPORAL_TLS_CLIENT_CERT_PATH / _KEY_PATH (mTLS), TEMPORAL_TLS_SERVER_CA_CERT_PATH,
// TEMPORAL_TLS_SERVER_NAME, TEMPORAL_GRPC_META_<NAME>, and a profile of the
// TOML file TEMPORAL_CONFIG_FILE names (TEMPORAL_PROFILE picks it). The
// caller adds its logger, data converter and metrics.
func (c Config) ClientOptions() (client.Options, error) {
	opts, err := envconfig.LoadClientOptions(envconfig.LoadClientOptionsRequest{})
	if err != nil {
		return client.Options{}, fmt.Errorf("temporal client configuration (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE, TEMPORAL_TLS_*): %w", err)
	}
	opts.HostPort, opts.Namespace = c.TemporalAddress, c.Namespace
	return opts, nil
}
