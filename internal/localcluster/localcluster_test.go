package localcluster

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPostgresFromURL(t *testing.T) {
	pg, err := PostgresFromURL("postgres://temporal:s%40cret@db.example.com:6543/lipsync?sslmode=disable")
	require.NoError(t, err)
	require.Equal(t, Postgres{Host: "db.example.com", Port: 6543, User: "temporal", Password: "s@cret"}, pg)

	pg, err = PostgresFromURL("postgres://postgres@127.0.0.1/postgres")
	require.NoError(t, err)
	require.Equal(t, Postgres{Host: "127.0.0.1", Port: 5432, User: "postgres"}, pg)

	for _, bad := range []string{"postgres:///x", "postgres://127.0.0.1:5432/x", "postgres://u@h:port/x", "::"} {
		_, err := PostgresFromURL(bad)
		require.Error(t, err, bad)
	}
}

func TestServerEnvSetsEveryPortOfTheTemplate(t *testing.T) {
	ports := Ports{7233, 7243, 6933, 7234, 6934, 7235, 6935, 7239, 6939}
	env := ServerEnv(Postgres{Host: "h", Port: 5433, User: "u", Password: "p"}, ports, 4, "/dc.yaml", "127.0.0.1", "warn")
	require.Equal(t, "postgres12", env["DB"])
	require.Equal(t, "5433", env["DB_PORT"])
	require.Equal(t, "5433", env["VISIBILITY_DB_PORT"], "the template does not take the visibility port from DB_PORT")
	require.Equal(t, "4", env["NUM_HISTORY_SHARDS"])
	require.Equal(t, "/dc.yaml", env["DYNAMIC_CONFIG_FILE_PATH"])
	seen := map[string]bool{}
	for _, k := range []string{"FRONTEND_GRPC_PORT", "FRONTEND_HTTP_PORT", "FRONTEND_MEMBERSHIP_PORT", "HISTORY_GRPC_PORT",
		"HISTORY_MEMBERSHIP_PORT", "MATCHING_GRPC_PORT", "MATCHING_MEMBERSHIP_PORT", "WORKER_GRPC_PORT", "WORKER_MEMBERSHIP_PORT"} {
		require.NotEmpty(t, env[k], k)
		require.False(t, seen[env[k]], "%s repeats a port", k)
		seen[env[k]] = true
	}
}

func TestPortsAreChosenOnceAndReused(t *testing.T) {
	dir := t.TempDir()
	c := &Cluster{opts: Options{Dir: dir, IP: "127.0.0.1", Headless: true}}
	require.NoError(t, c.allocatePorts())
	first := c.ports
	for _, p := range []int{first.FrontendMembership, first.HistoryMembership, first.MatchingMembership, first.WorkerMembership} {
		require.Less(t, p, 32768, "membership ports fit the smallint column")
	}
	require.FileExists(t, filepath.Join(dir, "ports.json"))

	again := &Cluster{opts: Options{Dir: dir, IP: "127.0.0.1", Headless: true}}
	require.NoError(t, again.allocatePorts())
	require.Equal(t, first, again.ports, "a restarted cluster keeps its ports")

	// A port taken since: new ones.
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(first.HistoryGRPC)))
	require.NoError(t, err)
	defer l.Close()
	moved := &Cluster{opts: Options{Dir: dir, IP: "127.0.0.1", Headless: true}}
	require.NoError(t, moved.allocatePorts())
	require.NotEqual(t, first.HistoryGRPC, moved.ports.HistoryGRPC)
}

func TestWriteFilesCopiesDeploy(t *testing.T) {
	dir := t.TempDir()
	c := &Cluster{opts: Options{Dir: dir}}
	require.NoError(t, c.writeFiles())
	for _, name := range []string{"temporal-dynamicconfig.yaml", "temporal-schema.sh", "temporal-namespace.sh"} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		want, err := os.ReadFile(filepath.Join("..", "..", "deploy", name))
		require.NoError(t, err)
		require.Equal(t, string(want), string(got), name)
	}
}
