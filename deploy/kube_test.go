package deploy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"lectern/app"
	"lectern/auth"
	"lectern/client"
	"lectern/config"
)

type kubeObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name        string            `yaml:"name"`
		Namespace   string            `yaml:"namespace"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		Replicas    int            `yaml:"replicas"`
		ServiceName string         `yaml:"serviceName"`
		Selector    map[string]any `yaml:"selector"`
		Ports       []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort int    `yaml:"targetPort"`
		} `yaml:"ports"`
		Template struct {
			Metadata struct {
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	HostNetwork                   bool   `yaml:"hostNetwork"`
	DNSPolicy                     string `yaml:"dnsPolicy"`
	TerminationGracePeriodSeconds int    `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               struct {
		RunAsNonRoot bool `yaml:"runAsNonRoot"`
		RunAsUser    int  `yaml:"runAsUser"`
		FSGroup      int  `yaml:"fsGroup"`
	} `yaml:"securityContext"`
	Containers []container `yaml:"containers"`
}

type container struct {
	Name  string `yaml:"name"`
	Image string `yaml:"image"`
	Env   []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
			SecretKeyRef *secretRef `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
		Protocol      string `yaml:"protocol"`
	} `yaml:"ports"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	Lifecycle      struct {
		PreStop struct {
			Exec *struct {
				Command []string `yaml:"command"`
			} `yaml:"exec"`
		} `yaml:"preStop"`
	} `yaml:"lifecycle"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type secretRef struct {
	Name string `yaml:"name"`
	Key  string `yaml:"key"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

func readKube(t *testing.T) map[string]kubeObject {
	t.Helper()
	src, err := os.ReadFile("kubernetes/lectern.yaml")
	require.NoError(t, err)
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(false)
	out := map[string]kubeObject{}
	for {
		var o kubeObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		require.Equal(t, "lectern", o.Metadata.Namespace, "%s %s", o.Kind, o.Metadata.Name)
		out[o.Kind+"/"+o.Metadata.Name] = o
	}
	return out
}

var kubeRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// podEnv is the container's environment as the kubelet makes it for the
// pod lectern-0 on a host at 10.0.0.5: field references resolved,
// $(VAR) expanded from the variables before it.
func podEnv(t *testing.T, c container) map[string]string {
	t.Helper()
	fields := map[string]string{"metadata.name": "lectern-0", "status.hostIP": "10.0.0.5", "spec.nodeName": "host-5"}
	env := map[string]string{}
	for _, e := range c.Env {
		v := kubeRef.ReplaceAllStringFunc(e.Value, func(m string) string {
			name := kubeRef.FindStringSubmatch(m)[1]
			got, ok := env[name]
			require.True(t, ok, "%s refers to $(%s), not defined before it", e.Name, name)
			return got
		})
		if f := e.ValueFrom; f != nil {
			switch {
			case f.FieldRef != nil:
				var ok bool
				v, ok = fields[f.FieldRef.FieldPath]
				require.True(t, ok, "%s: field %s", e.Name, f.FieldRef.FieldPath)
			case f.SecretKeyRef != nil:
				require.Equal(t, secretRef{"lectern", "secret"}, *f.SecretKeyRef,
					"the secret the header tells to create")
				v = testSecret
			}
		}
		env[e.Name] = v
	}
	return env
}

// TestKubernetesLectern checks the Lectern StatefulSet against the
// configuration its environment makes: host networking with the media
// ports declared, probes on the HTTP port's /readyz and /healthz, a grace
// period longer than the pre-stop pause and the graceful stop together,
// the image's user, and the data directory on the volume.
func TestKubernetesLectern(t *testing.T) {
	objs := readKube(t)
	sts, ok := objs["StatefulSet/lectern"]
	require.True(t, ok)
	pod := sts.Spec.Template.Spec
	require.True(t, pod.HostNetwork)
	require.Equal(t, "ClusterFirstWithHostNet", pod.DNSPolicy, "NATS names resolve from the host network")
	require.Len(t, pod.Containers, 1)
	c := pod.Containers[0]
	cfg := loadEnv(t, withImageEnv(t, podEnv(t, c)))
	require.Equal(t, "lectern-0", cfg.NodeID)
	require.Equal(t, "https://lectern-0.lectern.example.org", cfg.PublicURL)
	require.Equal(t, "10.0.0.5", cfg.PublicIP)

	_, httpPort, _ := strings.Cut(cfg.HTTP, ":")
	ports := map[string]string{}
	for _, p := range c.Ports {
		ports[p.Name] = strings.ToLower(p.Protocol) + " " + strconv.Itoa(p.ContainerPort)
	}
	require.Equal(t, map[string]string{
		"http": "tcp " + httpPort, "media-udp": "udp " + strconv.Itoa(cfg.UDPPort), "media-tcp": "tcp " + strconv.Itoa(cfg.TCPPort),
	}, ports)
	for path, p := range map[string]*probe{"/readyz": c.ReadinessProbe, "/healthz": c.LivenessProbe} {
		require.NotNil(t, p)
		require.NotNil(t, p.HTTPGet)
		require.Equal(t, path, p.HTTPGet.Path)
		require.Equal(t, "tcp "+httpPort, ports[p.HTTPGet.Port])
	}
	require.Equal(t, httpPort, sts.Spec.Template.Metadata.Annotations["prometheus.io/port"])
	svc := objs["Service/lectern"]
	require.Len(t, svc.Spec.Ports, 1)
	require.Equal(t, httpPort, strconv.Itoa(svc.Spec.Ports[0].TargetPort))

	drain := preStopDrain(t, c)
	require.Equal(t, "http://127.0.0.1:"+httpPort, drain.url, "the pre-stop hook drains this pod's own node")
	require.Positive(t, drain.timeout, "the drain gives up before Kubernetes kills the pod")
	grace := time.Duration(pod.TerminationGracePeriodSeconds) * time.Second
	require.Greater(t, grace, drain.timeout+cfg.ShutdownTimeout)
	require.GreaterOrEqual(t, grace, time.Hour, "long enough for a class to end")

	users := readDockerfile(t).finalStage().all("USER")
	uid, _, _ := strings.Cut(users[len(users)-1], ":")
	require.True(t, pod.SecurityContext.RunAsNonRoot)
	require.Equal(t, uid, strconv.Itoa(pod.SecurityContext.RunAsUser))
	require.Equal(t, uid, strconv.Itoa(pod.SecurityContext.FSGroup), "the data volume writable by the user")
	require.True(t, c.SecurityContext.ReadOnlyRootFilesystem)
	require.NotNil(t, c.SecurityContext.AllowPrivilegeEscalation)
	require.False(t, *c.SecurityContext.AllowPrivilegeEscalation)
	mounted := false
	for _, m := range c.VolumeMounts {
		mounted = mounted || m.MountPath == cfg.Data
	}
	require.True(t, mounted, "the data directory %s is a volume", cfg.Data)
}

// drainHook is the pre-stop hook's `lectern drain` command.
type drainHook struct {
	args    []string // after the binary
	url     string
	timeout time.Duration
}

func preStopDrain(t *testing.T, c container) drainHook {
	t.Helper()
	require.NotNil(t, c.Lifecycle.PreStop.Exec, "a pre-stop exec hook")
	cmd := c.Lifecycle.PreStop.Exec.Command
	require.GreaterOrEqual(t, len(cmd), 3)
	require.Equal(t, "/usr/local/bin/lectern", cmd[0], "the image's binary")
	require.Equal(t, []string{"drain", "--wait"}, cmd[1:3])
	h := drainHook{args: cmd[1:]}
	for i := 1; i+1 < len(cmd); i++ {
		switch cmd[i] {
		case "--url":
			h.url = cmd[i+1]
		case "--timeout":
			d, err := time.ParseDuration(cmd[i+1])
			require.NoError(t, err)
			h.timeout = d
		}
	}
	return h
}

// TestKubernetesPreStopDrains runs the pre-stop hook's command, with the
// binary built as the Dockerfile builds it, against a running node that
// holds a class: it returns only once the class's participant has left,
// and the node is no longer ready.
func TestKubernetesPreStopDrains(t *testing.T) {
	c := readKube(t)["StatefulSet/lectern"].Spec.Template.Spec.Containers[0]
	h := preStopDrain(t, c)
	bin := lecternBinary(t)
	base, signer := startNode(t)
	tok, err := client.MintToken(signer, "algebra", auth.RoleTeacher, "Ms Rivera", "")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	teacher, err := client.Dial(ctx, base, tok, client.Options{Logger: zerolog.Nop(), NoSubscribe: true})
	require.NoError(t, err)
	defer teacher.Close()

	args := append([]string(nil), h.args...)
	for i := range args {
		if i > 0 && args[i-1] == "--url" {
			args[i] = base // the one change: this test's node, not the pod's port
		}
	}
	args = append(args, "--interval", "50ms")
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "LECTERN_SECRET="+testSecret)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	require.Eventually(t, func() bool { return readyzCode(t, base) == http.StatusServiceUnavailable },
		10*time.Second, 20*time.Millisecond, "the node stops being ready")
	select {
	case err := <-done:
		t.Fatalf("the hook returned with a class on the node: %v\n%s", err, out.String())
	case <-time.After(300 * time.Millisecond):
	}
	require.NoError(t, teacher.Close())
	select {
	case err := <-done:
		require.NoError(t, err, "%s", out.String())
	case <-time.After(15 * time.Second):
		t.Fatalf("the hook did not return once the node was empty:\n%s", out.String())
	}
	require.Contains(t, out.String(), "drained")
}

func readyzCode(t *testing.T, base string) int {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestKubernetesNATS checks the NATS StatefulSet's configuration with
// nats-server's parser: JetStream on, routes to each of its replicas by
// their stable names, and Lectern's NATS URLs naming the same servers.
func TestKubernetesNATS(t *testing.T) {
	objs := readKube(t)
	sts := objs["StatefulSet/nats"]
	require.Equal(t, 3, sts.Spec.Replicas)
	require.Equal(t, "nats", sts.Spec.ServiceName)
	var want []string
	for i := range sts.Spec.Replicas {
		want = append(want, "nats-"+strconv.Itoa(i)+".nats.lectern.svc.cluster.local")
	}
	opts := natsOptions(t, objs["ConfigMap/nats"].Data["nats.conf"], map[string]string{"POD_NAME": "nats-1"})
	require.Equal(t, "nats-1", opts.ServerName)
	require.True(t, opts.JetStream)
	var routes []string
	for _, r := range opts.Routes {
		require.Equal(t, strconv.Itoa(opts.Cluster.Port), r.Port())
		routes = append(routes, r.Hostname())
	}
	require.ElementsMatch(t, want, routes)

	cfg := loadEnv(t, withImageEnv(t, podEnv(t, objs["StatefulSet/lectern"].Spec.Template.Spec.Containers[0])))
	var hosts []string
	for _, u := range cfg.NATS {
		pu, err := url.Parse(u)
		require.NoError(t, err)
		require.Equal(t, strconv.Itoa(opts.Port), pu.Port())
		hosts = append(hosts, pu.Hostname())
	}
	require.ElementsMatch(t, want, hosts)
}

// TestProbesAnswerOnARunningNode starts a node and asks the paths the
// manifests probe and scrape: each answers 200 on a node that is up.
func TestProbesAnswerOnARunningNode(t *testing.T) {
	c := readKube(t)["StatefulSet/lectern"].Spec.Template.Spec.Containers[0]
	meta := readKube(t)["StatefulSet/lectern"].Spec.Template.Metadata.Annotations
	base, _ := startNode(t)
	for _, path := range []string{c.ReadinessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Path, meta["prometheus.io/path"]} {
		resp, err := http.Get(base + path)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
	}
}

// startNode runs a node with its own embedded NATS on free loopback
// ports and the test secret, stopped when the test ends; it returns its
// base URL and its signer.
func startNode(t *testing.T) (string, *auth.Signer) {
	t.Helper()
	cfg := config.Default()
	cfg.HTTP = "127.0.0.1:0"
	cfg.UDPPort = 0
	cfg.TCPPort = 0
	cfg.PublicIP = "127.0.0.1"
	cfg.Data = t.TempDir()
	cfg.LogLevel = "warn"
	cfg.Secret = testSecret
	require.NoError(t, cfg.Validate())
	a, err := app.New(cfg, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel))
	require.NoError(t, err)
	require.NoError(t, a.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		require.NoError(t, a.Shutdown(ctx))
	})
	return a.BaseURL(), a.Signer()
}
