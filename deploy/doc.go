// Package deploy holds what it takes to run Lectern outside a developer's
// shell: a container image (Dockerfile), a compose file for three nodes
// and a three-server NATS cluster (compose/), a systemd unit (systemd/),
// Kubernetes manifests (kubernetes/), a Grafana dashboard (grafana/) and
// Prometheus alerting rules (prometheus/). It has no code; its tests check
// those files against the configuration, the HTTP endpoints and the
// metrics of a running node, and build the binary as the Dockerfile does.
package deploy
