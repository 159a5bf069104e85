package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"lectern/sfu"
)

// watcherHost names the NATS server that hosts the ordered consumer
// behind tn's directory watcher ("" while it has none): the consumer
// whose deliver subject is one of the subscriptions of tn's connection.
func watcherHost(t *testing.T, servers []*server.Server, tn *testNode) string {
	t.Helper()
	cid, err := tn.nc.GetClientID()
	require.NoError(t, err)
	subjects := map[string]bool{}
	for _, s := range servers {
		if s.ID() != tn.nc.ConnectedServerId() {
			continue
		}
		cz, err := s.Connz(&server.ConnzOptions{CID: cid, Subscriptions: true, SubscriptionsDetail: true})
		require.NoError(t, err)
		for _, c := range cz.Conns {
			for _, sd := range c.SubsDetail {
				subjects[sd.Subject] = true
			}
		}
	}
	js, err := jetstream.New(tn.nc)
	require.NoError(t, err)
	st, err := js.Stream(ctxT(t), "KV_"+DefaultBucket)
	require.NoError(t, err)
	host := ""
	list := st.ListConsumers(ctxT(t))
	for ci := range list.Info() {
		if subjects[ci.Config.DeliverSubject] && ci.Cluster != nil {
			host = ci.Cluster.Leader
		}
	}
	return host
}

// TestMirrorCatchesUpAfterServerDeath: a node's directory watcher lives
// on another NATS server of the cluster, and that server dies (with the
// node on it). The node's own connection never drops, so nothing but the
// watcher's silence tells; its mirror still catches up with classes
// claimed, taken over and released after the death within seconds.
func TestMirrorCatchesUpAfterServerDeath(t *testing.T) {
	t.Parallel()
	servers := startCluster(t, 3)
	obs := startNode(t, connect(t, servers[0].ClientURL()), "observer", 0)
	require.Eventually(t, obs.node.Directory.Synced, 10*time.Second, 20*time.Millisecond)
	// The watcher's consumer is placed on a random server of the stream:
	// watch again until it is not the observer's own.
	var host string
	require.Eventually(t, func() bool {
		host = watcherHost(t, servers, obs)
		if host == servers[0].Name() {
			select {
			case obs.node.Directory.restart <- struct{}{}:
			default:
			}
			host = ""
		}
		return host != ""
	}, 30*time.Second, 200*time.Millisecond, "a watcher hosted on another server")
	var dead, live *server.Server
	for _, s := range servers[1:] {
		if s.Name() == host {
			dead = s
		} else {
			live = s
		}
	}
	victim := startNode(t, connect(t, dead.ClientURL()), "victim", 0)
	writer := startNode(t, connect(t, live.ClientURL()), "writer", 0)
	waitAllSeen(t, []*testNode{obs, victim, writer})
	for _, room := range []sfu.RoomID{"kept", "ended"} {
		_, err := writer.node.Directory.Claim(ctxT(t), room)
		require.NoError(t, err)
	}
	_, err := victim.node.Directory.Claim(ctxT(t), "orphan")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(obs.node.Directory.Entries()) == 3 },
		5*time.Second, 20*time.Millisecond, "the watcher mirrors the bucket")
	require.Equal(t, host, watcherHost(t, servers, obs))

	victim.crash(t)
	shutdown(dead)
	// JetStream elects new leaders for what the dead server led: write
	// once the bucket takes writes again.
	require.Eventually(t, func() bool {
		_, err := writer.node.Directory.Claim(ctxT(t), "new")
		return err == nil
	}, 20*time.Second, 100*time.Millisecond, "the bucket takes writes")
	written := time.Now()
	require.Eventually(t, func() bool { return mirrored(obs)["new"] == "writer" },
		5*time.Second, 20*time.Millisecond, "the observer's mirror catches up")
	t.Logf("the mirror caught up %v after the first write", time.Since(written).Round(time.Millisecond))

	require.NoError(t, writer.node.Directory.Release(ctxT(t), "ended"))
	require.Eventually(t, func() bool {
		_, err := writer.node.Directory.Claim(ctxT(t), "orphan")
		return err == nil
	}, 20*time.Second, 100*time.Millisecond, "the dead node's class is taken over")
	want := map[sfu.RoomID]NodeID{"kept": "writer", "new": "writer", "orphan": "writer"}
	require.Eventually(t, func() bool { return fmt.Sprint(mirrored(obs)) == fmt.Sprint(want) },
		5*time.Second, 20*time.Millisecond, "the mirror follows: %v", mirrored(obs))
}

// mirrored is tn's mirror: class -> origin.
func mirrored(tn *testNode) map[sfu.RoomID]NodeID {
	got := map[sfu.RoomID]NodeID{}
	for _, e := range tn.node.Directory.Entries() {
		got[e.Room] = e.Origin
	}
	return got
}
