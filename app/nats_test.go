package app

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"lectern/config"
	"lectern/internal/natstest"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func readyz(t *testing.T, a *App) int {
	code, _ := get(t, a.BaseURL()+"/readyz")
	return code
}

// TestExternalNATSOutage: a node on an external nats-server (the stock
// 2.9 binary) is ready while connected, not ready while the server is
// down, and ready again when it comes back on the same port: no restart.
func TestExternalNATSOutage(t *testing.T) {
	t.Parallel()
	p := natstest.Start(t)
	cfg := testConfig(t)
	cfg.NATS = []string{p.URL()}
	a := startApp(t, cfg, zerolog.New(io.Discard))
	require.Equal(t, http.StatusOK, readyz(t, a))
	require.NoFileExists(t, filepath.Join(cfg.Data, "nats", a.NodeID()), "no embedded store with external NATS")
	require.Empty(t, a.natsClientURL())

	p.Stop()
	require.Eventually(t, func() bool { return readyz(t, a) == http.StatusServiceUnavailable },
		10*time.Second, 50*time.Millisecond, "not ready while NATS is away")
	code, body := get(t, a.BaseURL()+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, "NATS disconnected")
	code, _ = get(t, a.BaseURL()+"/healthz")
	require.Equal(t, http.StatusOK, code)

	p.Start()
	require.Eventually(t, func() bool { return readyz(t, a) == http.StatusOK },
		10*time.Second, 50*time.Millisecond, "ready again once NATS is back")
	sub, err := a.NATS().SubscribeSync("lectern.test")
	require.NoError(t, err)
	require.NoError(t, a.NATS().Publish("lectern.test", []byte("back")))
	msg, err := sub.NextMsg(5 * time.Second)
	require.NoError(t, err)
	require.Equal(t, "back", string(msg.Data))
}

func TestExternalNATSUnreachable(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.NATS = []string{"nats://127.0.0.1:" + strconv.Itoa(freePort(t))}
	a, err := New(cfg, zerolog.New(io.Discard))
	require.NoError(t, err)
	err = a.Start()
	require.ErrorIs(t, err, ErrNATS)
	require.ErrorContains(t, err, cfg.NATS[0])
}

func TestExternalNATSBadCredentialsFile(t *testing.T) {
	t.Parallel()
	p := natstest.Start(t)
	cfg := testConfig(t)
	cfg.NATS = []string{p.URL()}
	cfg.NATSCreds = filepath.Join(t.TempDir(), "missing.creds")
	a, err := New(cfg, zerolog.New(io.Discard))
	require.NoError(t, err)
	require.ErrorIs(t, a.Start(), ErrNATS)
}

// TestEmbeddedNATSCluster: three nodes whose embedded servers form one
// NATS cluster through routes, with no other process; they share a data
// directory, each keeping its own JetStream store, and clustered
// JetStream holds a three-replica bucket.
func TestEmbeddedNATSCluster(t *testing.T) {
	t.Parallel()
	data := filepath.Join(t.TempDir(), "shared")
	ports := []int{freePort(t), freePort(t), freePort(t)}
	var routes []string
	for _, port := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", port))
	}
	var apps []*App
	for i, port := range ports {
		cfg := testConfig(t)
		cfg.Data = data
		cfg.NodeID = fmt.Sprintf("n%d", i+1)
		cfg.NATSClusterListen = fmt.Sprintf("127.0.0.1:%d", port)
		cfg.NATSRoutes = routes
		apps = append(apps, startApp(t, cfg, zerolog.New(io.Discard)))
	}
	for _, a := range apps {
		require.DirExists(t, filepath.Join(data, "nats", a.NodeID()))
		require.Equal(t, http.StatusOK, readyz(t, a))
		require.NotEmpty(t, a.natsClientURL(), "a clustered server listens (on loopback) for its routes to start")
	}

	js, err := jetstream.New(apps[0].NATS())
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "probe", Replicas: 3})
		return err == nil
	}, 30*time.Second, 200*time.Millisecond, "clustered JetStream takes a three-replica bucket")
	kv, err := js.KeyValue(context.Background(), "probe")
	require.NoError(t, err)
	_, err = kv.Put(context.Background(), "k", []byte("v"))
	require.NoError(t, err)

	js3, err := jetstream.New(apps[2].NATS())
	require.NoError(t, err)
	kv3, err := js3.KeyValue(context.Background(), "probe")
	require.NoError(t, err)
	e, err := kv3.Get(context.Background(), "k")
	require.NoError(t, err)
	require.Equal(t, "v", string(e.Value()))

	sub, err := apps[2].NATS().SubscribeSync("lectern.cross")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		require.NoError(t, apps[0].NATS().Publish("lectern.cross", []byte("hi")))
		_, err := sub.NextMsg(100 * time.Millisecond)
		return err == nil
	}, 10*time.Second, 10*time.Millisecond, "core NATS crosses the routes")
}

// TestEmbeddedNATSListen: with nats_listen the embedded server takes
// connections from other processes too.
func TestEmbeddedNATSListen(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.NATSListen = "127.0.0.1:0"
	a := startApp(t, cfg, zerolog.New(io.Discard))
	url := a.natsClientURL()
	require.NotEmpty(t, url)
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	sub, err := a.NATS().SubscribeSync("lectern.outside")
	require.NoError(t, err)
	require.NoError(t, a.NATS().Flush())
	require.NoError(t, nc.Publish("lectern.outside", []byte("x")))
	_, err = sub.NextMsg(5 * time.Second)
	require.NoError(t, err)

	plain := startApp(t, testConfig(t), zerolog.New(io.Discard))
	require.Empty(t, plain.natsClientURL(), "by default the server listens on no port")
}

func TestNodeIDAndPublicURL(t *testing.T) {
	t.Parallel()
	host, err := os.Hostname()
	require.NoError(t, err)
	a := startApp(t, testConfig(t), zerolog.New(io.Discard))
	port := a.Addr().Port
	require.Equal(t, config.DeriveNodeID(host, port), a.NodeID())
	require.Equal(t, "http://127.0.0.1:"+strconv.Itoa(port), a.PublicURL())
	require.DirExists(t, filepath.Join(a.cfg.Data, "nats", a.NodeID()), "the store is per node id")

	cfg := testConfig(t)
	cfg.NodeID, cfg.PublicURL = "edge-7", "https://edge-7.example.org/"
	b := startApp(t, cfg, zerolog.New(io.Discard))
	require.Equal(t, "edge-7", b.NodeID())
	require.Equal(t, "https://edge-7.example.org", b.PublicURL())

	require.Equal(t, "http://"+net.JoinHostPort(host, "8080"),
		publicURL(config.Default(), &net.TCPAddr{IP: net.IPv4zero, Port: 8080}), "every interface: the host name")
}

func TestServerOptions(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Data = "/d"
	o, err := serverOptions(cfg, "n1")
	require.NoError(t, err)
	require.True(t, o.DontListen)
	require.Equal(t, "/d/nats/n1", o.StoreDir)
	require.Equal(t, "n1", o.ServerName)
	require.Zero(t, o.Cluster.Port)

	cfg.NATSListen = ":0"
	cfg.NATSClusterListen, cfg.NATSRoutes = "10.0.0.5:6222", []string{"nats-route://10.0.0.6:6222"}
	o, err = serverOptions(cfg, "n1")
	require.NoError(t, err)
	require.False(t, o.DontListen)
	require.Equal(t, "0.0.0.0", o.Host)
	require.Equal(t, -1, o.Port, "0 means any free port, which nats-server spells -1")
	require.Equal(t, "lectern", o.Cluster.Name)
	require.Equal(t, "10.0.0.5", o.Cluster.Host)
	require.Equal(t, 6222, o.Cluster.Port)
	require.Len(t, o.Routes, 1)
	require.Equal(t, "10.0.0.6:6222", o.Routes[0].Host)
}
