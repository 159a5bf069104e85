package app

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"time"

	"lectern/cluster"
	"lectern/config"
)

// clusterRetry is the pause between attempts to join the control plane.
const clusterRetry = 2 * time.Second

// clustered reports whether other nodes can reach this node's NATS: an
// external NATS cluster, or an embedded server that listens. A node on its
// own (the default) runs no control plane and behaves as a single server.
func clustered(cfg config.Config) bool {
	return cfg.ExternalNATS() || cfg.NATSListen != "" || cfg.NATSClusterListen != ""
}

// clusterJoin is the node's part of the cluster, joined in the background:
// clustered JetStream has no leader until a majority of the NATS servers
// is up, and the other nodes may start later than this one. Until it is
// joined the node serves its classes on its own.
type clusterJoin struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex // guards node
	node *cluster.Node
}

// startCluster joins the cluster's control plane (docs/scaling.md):
// announcements, the class directory and the classroom event bus.
func (a *App) startCluster() {
	if !clustered(a.cfg) {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.clu.cancel, a.clu.done = cancel, make(chan struct{})
	opts := cluster.Options{
		Conn: a.nats.conn,
		Self: cluster.NodeInfo{
			ID: cluster.NodeID(a.NodeID()), URL: a.PublicURL(),
			MediaAddr: a.mediaAddr(), Capacity: a.cfg.MaxStudents,
		},
		Load: func() cluster.Load {
			if s := a.load.Load(); s != nil {
				return s.ClusterLoad()
			}
			return cluster.Load{}
		},
		Logger: a.log,
	}
	go func() {
		defer close(a.clu.done)
		for {
			n, err := cluster.Start(ctx, opts)
			if err == nil {
				a.clu.mu.Lock()
				a.clu.node = n
				a.clu.mu.Unlock()
				if err := a.sig.JoinCluster(n); err != nil {
					a.log.Error().Err(err).Msg("cluster: signaling cannot join")
				}
				a.log.Info().Msg("joined the cluster's control plane")
				return
			}
			a.log.Warn().Err(err).Msg("cluster: control plane not available yet")
			select {
			case <-ctx.Done():
				return
			case <-time.After(clusterRetry):
			}
		}
	}()
}

// cancelJoin stops a join still in progress and waits for it.
func (c *clusterJoin) cancelJoin() {
	if c.cancel != nil {
		c.cancel()
		<-c.done
	}
}

// stop closes the node's part of the cluster; its last announcement says
// it is leaving.
func (c *clusterJoin) stop() error {
	c.cancelJoin()
	c.mu.Lock()
	n := c.node
	c.node = nil
	c.mu.Unlock()
	if n == nil {
		return nil
	}
	if err := n.Close(); err != nil && !errors.Is(err, cluster.ErrClosed) {
		return err
	}
	return nil
}

// mediaAddr is the ICE UDP address other nodes reach: the public IP when
// set, else the bound one.
func (a *App) mediaAddr() string {
	u := a.engine.UDPAddr()
	host := u.IP.String()
	if a.cfg.PublicIP != "" {
		host = a.cfg.PublicIP
	}
	return net.JoinHostPort(host, strconv.Itoa(u.Port))
}

// Cluster is the node's part of the cluster: nil on a node on its own,
// and until it has joined.
func (a *App) Cluster() *cluster.Node {
	a.clu.mu.Lock()
	defer a.clu.mu.Unlock()
	return a.clu.node
}
