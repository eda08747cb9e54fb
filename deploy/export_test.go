package deploy

// The helpers of this package's tests, for the external tests
// (cluster_test.go imports internal/localcluster, which imports this
// package).
var (
	ReadYAMLDocs = readYAMLDocs
	StrMap       = strMap
	ToString     = toString
	AsSlice      = asSlice
)
