package deploy

import _ "embed"

// The Temporal server's set-up as deploy/ ships it. The local cluster of
// the tests, `make run CLUSTER=1` and `make bench` (internal/localcluster)
// runs these very files, so what is tested is what is deployed.
var (
	// TemporalDynamicConfig is temporal-dynamicconfig.yaml: the server's
	// dynamic configuration (one partition for the rate-limited queues).
	//
	//go:embed temporal-dynamicconfig.yaml
	TemporalDynamicConfig []byte

	// TemporalSchemaScript is temporal-schema.sh: creates the databases
	// and applies the schemas with temporal-sql-tool.
	//
	//go:embed temporal-schema.sh
	TemporalSchemaScript []byte

	// TemporalNamespaceScript is temporal-namespace.sh: creates the
	// namespace and registers the search attributes with the Temporal CLI.
	//
	//go:embed temporal-namespace.sh
	TemporalNamespaceScript []byte
)
