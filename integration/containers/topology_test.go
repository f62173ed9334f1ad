//go:build containers

package containers

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	mobycontainer "github.com/moby/moby/api/types/container"
	mobynet "github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tcnetwork "github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
)

// Images names the images the suite runs. The defaults are the ones
// ops/images/build.sh builds; each can be replaced by an official image.
type Images struct {
	MCPStream string // MCPSTREAM_IMAGE: every mcpstream role
	Broker    string // BROKER_IMAGE: the mcpstream image runs `mcpstream broker`; anything else is taken for apache/kafka
	Postgres  string // POSTGRES_IMAGE
	Redis     string // REDIS_IMAGE
	SlowTool  string // SLOWTOOL_IMAGE: the suite's upstream MCP server (slowtool/), always built locally
}

func imagesFromEnv() Images {
	get := func(k, def string) string {
		if v := os.Getenv(k); v != "" {
			return v
		}
		return def
	}
	im := Images{MCPStream: get("MCPSTREAM_IMAGE", "local/mcpstream:dev"),
		Postgres: get("POSTGRES_IMAGE", "local/postgres:15"), Redis: get("REDIS_IMAGE", "local/redis:7"),
		SlowTool: get("SLOWTOOL_IMAGE", "local/mcpstream-slowtool:dev")}
	im.Broker = get("BROKER_IMAGE", im.MCPStream)
	return im
}

const setupHelp = `the container suite needs a running Docker engine and its images:
  apt-get install -y docker.io && (dockerd >/var/log/dockerd.log 2>&1 &)
  ops/images/build.sh
  TESTCONTAINERS_RYUK_DISABLED=true go test -tags containers ./integration/containers/
(see integration/containers/README.md; official images: MCPSTREAM_IMAGE, BROKER_IMAGE, POSTGRES_IMAGE, REDIS_IMAGE;
SLOWTOOL_IMAGE is the suite's own fixture, built by ops/images/build.sh)`

// requireDocker fails (never skips) the test when no engine answers or an
// image is missing: a skipped suite would count as green in CI.
func requireDocker(t *testing.T, im Images) *testcontainers.DockerClient {
	t.Helper()
	// Ports are published on 127.0.0.1 only, and testcontainers would
	// otherwise guess the host from the default gateway when it believes
	// it runs inside a container (192.0.2.1 here).
	if os.Getenv("TESTCONTAINERS_HOST_OVERRIDE") == "" {
		os.Setenv("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		t.Fatalf("no Docker client: %v\n%s", err, setupHelp)
	}
	if _, err := cli.Ping(ctx, client.PingOptions{}); err != nil {
		t.Fatalf("Docker engine does not answer: %v\n%s", err, setupHelp)
	}
	if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") != "true" {
		t.Logf("TESTCONTAINERS_RYUK_DISABLED is not true: the reaper image must then be pullable")
	}
	for _, img := range []string{im.MCPStream, im.Broker, im.Postgres, im.Redis, im.SlowTool} {
		if _, err := cli.ImageInspect(ctx, img); err != nil {
			t.Logf("image %s is not present locally (%v); testcontainers will try to pull it", img, err)
		}
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// node is one container of the topology.
type node struct {
	name string
	c    testcontainers.Container
	port string // the HTTP port serving /readyz ("" if none)
}

// url is http://127.0.0.1:<published port> of n's HTTP port; the port
// changes when the container restarts, so it is read every time.
func (n *node) url(ctx context.Context) (string, error) {
	p, err := n.c.MappedPort(ctx, n.port)
	if err != nil {
		return "", fmt.Errorf("published port of %s: %w", n.name, err)
	}
	return fmt.Sprintf("http://127.0.0.1:%s", p.Port()), nil
}

// Topology is the platform as containers on one private network.
type Topology struct {
	Images     Images
	Net        *testcontainers.DockerNetwork
	Docker     *testcontainers.DockerClient
	Broker     *node
	Postgres   *node
	Redis      *node
	Gateways   []*node
	Processors []*node
	Projector  *node
	SlowTool   *node  // the upstream MCP server, when TopologyConfig.SlowTool
	PGDSN      string // as seen from inside the network
	HostPGDSN  string // as seen from the host
	upstreams  string // the processors' --upstreams file, "" for none
	t          *testing.T
	mu         sync.Mutex
	all        []*node
}

// TopologyConfig selects the parts to start. Zero: everything.
type TopologyConfig struct {
	Gateways, Processors int // zero means 2
	NoProjector          bool
	// SlowTool starts the suite's upstream MCP server (slowtool/) as
	// "slowtool" and gives every processor an --upstreams file naming it
	// "slow": its tool is then slow.progress.
	SlowTool bool
}

// SlowToolName is the slow tool as the platform serves it.
const SlowToolName = "slow.progress"

// slowUpstreams is the processors' upstreams file with the slow tool: one
// pooled upstream session per call in flight (it keeps no per-session
// state), enough of them for every client of a scenario at once.
const slowUpstreams = `{"upstreams": [{"name": "slow", "http": {"url": "http://slowtool:8080/mcp"}, "stateless": true,
  "timeouts": {"connect": "10s", "call": "2m", "acquire": "30s"}, "pool": {"size": 128}}]}`

const upstreamsPath = "/mcpstream-upstreams.json"

// loopbackPorts publishes every exposed port on 127.0.0.1 only (the host
// reaches the containers through loopback, nothing else can), on a host
// port chosen now: a restarted container keeps its address, as it would
// behind a load balancer.
func loopbackPorts(ports ...string) (func(*mobycontainer.HostConfig), error) {
	bind := mobynet.PortMap{}
	for _, p := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("choosing a host port: %w", err)
		}
		hp := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
		l.Close()
		bind[mobynet.MustParsePort(p)] = []mobynet.PortBinding{{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: hp}}
	}
	return func(hc *mobycontainer.HostConfig) {
		if hc.PortBindings == nil {
			hc.PortBindings = mobynet.PortMap{}
		}
		for p, b := range bind {
			hc.PortBindings[p] = b
		}
	}, nil
}

// StartTopology starts the cluster and waits for every role's /readyz.
func StartTopology(t *testing.T, cfg TopologyConfig) *Topology {
	t.Helper()
	if cfg.Gateways == 0 {
		cfg.Gateways = 2
	}
	if cfg.Processors == 0 {
		cfg.Processors = 2
	}
	im := imagesFromEnv()
	top := &Topology{Images: im, t: t, Docker: requireDocker(t, im)}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	nw, err := tcnetwork.New(ctx)
	if err != nil {
		t.Fatalf("creating the network: %v", err)
	}
	top.Net = nw
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if t.Failed() {
			top.dumpLogs(ctx)
		}
		for i := len(top.all) - 1; i >= 0; i-- {
			_ = top.all[i].c.Terminate(ctx, testcontainers.StopTimeout(5*time.Second))
		}
		_ = nw.Remove(ctx)
		// The broker's named volume outlives its container.
		_, _ = top.Docker.VolumeRemove(ctx, nw.Name+"-broker-data", client.VolumeRemoveOptions{Force: true})
	})

	// Infrastructure first, in parallel.
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	wg.Add(3)
	if cfg.SlowTool {
		top.upstreams = slowUpstreams
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := top.run(ctx, "slowtool", testcontainers.ContainerRequest{Image: im.SlowTool,
				ExposedPorts: []string{"8080/tcp"},
				WaitingFor:   wait.ForHTTP("/healthz").WithPort("8080/tcp").WithStartupTimeout(time.Minute)}, "8080/tcp")
			top.SlowTool = n
			errs <- err
		}()
	}
	go func() { defer wg.Done(); top.Broker, err = top.startBroker(ctx); errs <- err }()
	go func() {
		defer wg.Done()
		n, err := top.run(ctx, "postgres", testcontainers.ContainerRequest{Image: im.Postgres,
			Env:          map[string]string{"POSTGRES_HOST_AUTH_METHOD": "trust", "POSTGRES_DB": "mcpstream"},
			ExposedPorts: []string{"5432/tcp"}, WaitingFor: wait.ForListeningPort("5432/tcp").WithStartupTimeout(2 * time.Minute)}, "5432/tcp")
		top.Postgres = n
		errs <- err
	}()
	go func() {
		defer wg.Done()
		n, err := top.run(ctx, "redis", testcontainers.ContainerRequest{Image: im.Redis,
			ExposedPorts: []string{"6379/tcp"}, WaitingFor: wait.ForListeningPort("6379/tcp")}, "6379/tcp")
		top.Redis = n
		errs <- err
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	top.PGDSN = "postgres://postgres@postgres:5432/mcpstream?sslmode=disable"
	pgURL, _ := top.Postgres.url(ctx)
	top.HostPGDSN = strings.Replace(pgURL, "http://", "postgres://postgres@", 1) + "/mcpstream?sslmode=disable"
	if err := pollSQL(ctx, top.HostPGDSN); err != nil {
		t.Fatal(err)
	}

	// The roles, in parallel: processors and gateways each wait for the
	// topics the first of them creates.
	type res struct {
		n   *node
		err error
		gw  bool
	}
	out := make(chan res, cfg.Gateways+cfg.Processors)
	for i := 1; i <= cfg.Processors; i++ {
		go func() {
			n, err := top.StartProcessor(ctx, fmt.Sprintf("processor-%d", i))
			out <- res{n, err, false}
		}()
	}
	for i := 1; i <= cfg.Gateways; i++ {
		go func() {
			n, err := top.startRole(ctx, fmt.Sprintf("gateway-%d", i), "8080/tcp",
				"gateway", "--brokers", "broker:9092", "--instance-id", fmt.Sprintf("gateway-%d", i),
				"--listen", "0.0.0.0:8080", "--public-host", "--redis-addr", "redis:6379")
			out <- res{n, err, true}
		}()
	}
	for range cfg.Gateways + cfg.Processors {
		r := <-out
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.gw {
			top.Gateways = append(top.Gateways, r.n)
		} else {
			top.Processors = append(top.Processors, r.n)
		}
	}
	sortNodes(top.Gateways)
	sortNodes(top.Processors)
	if !cfg.NoProjector {
		n, err := top.StartProjector(ctx)
		if err != nil {
			t.Fatal(err)
		}
		top.Projector = n
	}
	t.Logf("topology up in %v: broker (%s), %d gateways, %d processors, projector=%v, postgres, redis",
		time.Since(start).Round(time.Millisecond), im.Broker, len(top.Gateways), len(top.Processors), !cfg.NoProjector)
	return top
}

func sortNodes(ns []*node) {
	for i := range ns {
		for j := i + 1; j < len(ns); j++ {
			if ns[j].name < ns[i].name {
				ns[i], ns[j] = ns[j], ns[i]
			}
		}
	}
}

// run starts one container on the network under alias name.
func (top *Topology) run(ctx context.Context, name string, req testcontainers.ContainerRequest, port string) (*node, error) {
	req.Name = fmt.Sprintf("%s-%s", top.Net.Name, name)
	ports, err := loopbackPorts(req.ExposedPorts...)
	if err != nil {
		return nil, err
	}
	req.HostConfigModifier = chain(req.HostConfigModifier, ports)
	gr := testcontainers.GenericContainerRequest{ContainerRequest: req, Started: true}
	if err := tcnetwork.WithNetwork([]string{name}, top.Net)(&gr); err != nil {
		return nil, err
	}
	c, err := testcontainers.GenericContainer(ctx, gr)
	n := &node{name: name, c: c, port: port}
	if c != nil {
		top.mu.Lock()
		top.all = append(top.all, n)
		top.mu.Unlock()
	}
	if err != nil {
		return n, fmt.Errorf("starting %s (%s): %w%s", name, req.Image, err, tail(ctx, c))
	}
	return n, nil
}

func chain(fs ...func(*mobycontainer.HostConfig)) func(*mobycontainer.HostConfig) {
	return func(hc *mobycontainer.HostConfig) {
		for _, f := range fs {
			if f != nil {
				f(hc)
			}
		}
	}
}

func (top *Topology) startBroker(ctx context.Context) (*node, error) {
	mounts := testcontainers.ContainerMounts{{Source: testcontainers.GenericVolumeMountSource{Name: top.Net.Name + "-broker-data"}, Target: "/data"}}
	if top.Images.Broker == top.Images.MCPStream {
		return top.run(ctx, "broker", testcontainers.ContainerRequest{Image: top.Images.Broker,
			Cmd: []string{"broker", "--broker-port", "9092", "--broker-listen-host", "0.0.0.0", "--broker-advertise-host", "broker",
				"--data-dir", "/data", "--ops-listen", "0.0.0.0:9090"},
			Mounts: mounts, ExposedPorts: []string{"9090/tcp"},
			WaitingFor: wait.ForHTTP("/readyz").WithPort("9090/tcp").WithStartupTimeout(90 * time.Second)}, "9090/tcp")
	}
	// apache/kafka (KRaft, one node, also the controller).
	mounts[0].Target = "/var/lib/kafka/data"
	return top.run(ctx, "broker", testcontainers.ContainerRequest{Image: top.Images.Broker,
		Env: map[string]string{
			"KAFKA_NODE_ID": "1", "KAFKA_PROCESS_ROLES": "broker,controller",
			"KAFKA_LISTENERS":                        "PLAINTEXT://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093",
			"KAFKA_ADVERTISED_LISTENERS":             "PLAINTEXT://broker:9092",
			"KAFKA_CONTROLLER_LISTENER_NAMES":        "CONTROLLER",
			"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP":   "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
			"KAFKA_CONTROLLER_QUORUM_VOTERS":         "1@localhost:9093",
			"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
			"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1", "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
			"KAFKA_LOG_DIRS": "/var/lib/kafka/data",
		},
		Mounts: mounts, ExposedPorts: []string{"9092/tcp"},
		WaitingFor: wait.ForLog("Kafka Server started").WithStartupTimeout(2 * time.Minute)}, "")
}

// StartProcessor starts processor name (goka processors and an executor).
func (top *Topology) StartProcessor(ctx context.Context, name string) (*node, error) {
	args := []string{"processor", "--brokers", "broker:9092", "--instance-id", name,
		"--ops-listen", "0.0.0.0:9090", "--redis-addr", "redis:6379"}
	var files []testcontainers.ContainerFile
	if top.upstreams != "" {
		args = append(args, "--upstreams", upstreamsPath)
		files = append(files, testcontainers.ContainerFile{Reader: strings.NewReader(top.upstreams), ContainerFilePath: upstreamsPath, FileMode: 0o644})
	}
	return top.run(ctx, name, testcontainers.ContainerRequest{Image: top.Images.MCPStream, Cmd: args, Files: files,
		ExposedPorts: []string{"9090/tcp"},
		WaitingFor:   wait.ForHTTP("/readyz").WithPort("9090/tcp").WithStartupTimeout(2 * time.Minute).WithPollInterval(200 * time.Millisecond)}, "9090/tcp")
}

// StartProjector starts the PostgreSQL projector (it has no /readyz: the
// scenarios wait for its rows).
func (top *Topology) StartProjector(ctx context.Context) (*node, error) {
	return top.run(ctx, "projector", testcontainers.ContainerRequest{Image: top.Images.MCPStream,
		Cmd: []string{"projector", "--brokers", "broker:9092", "--pg-dsn", top.PGDSN, "--instance-id", "projector"}}, "")
}

func (top *Topology) startRole(ctx context.Context, name, port string, args ...string) (*node, error) {
	return top.run(ctx, name, testcontainers.ContainerRequest{Image: top.Images.MCPStream, Cmd: args,
		ExposedPorts: []string{port},
		WaitingFor:   wait.ForHTTP("/readyz").WithPort(port).WithStartupTimeout(2 * time.Minute).WithPollInterval(200 * time.Millisecond)}, port)
}

// Kill sends SIGKILL (docker kill).
func (top *Topology) Kill(ctx context.Context, n *node) error {
	_, err := top.Docker.ContainerKill(ctx, n.c.GetContainerID(), client.ContainerKillOptions{Signal: "KILL"})
	if err != nil {
		return fmt.Errorf("killing %s: %w", n.name, err)
	}
	return nil
}

// Restart starts a stopped or killed container again and waits for its
// readiness (the wait strategy runs again).
func (top *Topology) Restart(ctx context.Context, n *node) error {
	if err := n.c.Start(ctx); err != nil {
		return fmt.Errorf("restarting %s: %w%s", n.name, err, tail(ctx, n.c))
	}
	return nil
}

// Disconnect / Connect cut n from the private network and put it back.
func (top *Topology) Disconnect(ctx context.Context, n *node) error {
	_, err := top.Docker.NetworkDisconnect(ctx, top.Net.ID, client.NetworkDisconnectOptions{Container: n.c.GetContainerID(), Force: true})
	return err
}

func (top *Topology) Connect(ctx context.Context, n *node) error {
	_, err := top.Docker.NetworkConnect(ctx, top.Net.ID, client.NetworkConnectOptions{Container: n.c.GetContainerID(),
		EndpointConfig: &mobynet.EndpointSettings{Aliases: []string{n.name}}})
	return err
}

// RunOnce runs an mcpstream command in a container on the network and
// returns its exit code and output.
func (top *Topology) RunOnce(ctx context.Context, name string, args ...string) (int, string, error) {
	n, err := top.run(ctx, name, testcontainers.ContainerRequest{Image: top.Images.MCPStream, Cmd: args,
		WaitingFor: wait.ForExit().WithExitTimeout(5 * time.Minute)}, "")
	if err != nil {
		return -1, "", err
	}
	st, err := n.c.State(ctx)
	if err != nil {
		return -1, "", err
	}
	return st.ExitCode, logs(ctx, n.c), nil
}

// GatewayURLs are the MCP endpoints of the gateways, as the host sees them.
func (top *Topology) GatewayURLs(ctx context.Context) []string {
	var out []string
	for _, g := range top.Gateways {
		u, err := g.url(ctx)
		if err != nil {
			top.t.Fatal(err)
		}
		out = append(out, u+"/mcp")
	}
	return out
}

func (top *Topology) dumpLogs(ctx context.Context) {
	for _, n := range top.all {
		top.t.Logf("=== logs of %s (last 6 KiB)\n%s", n.name, lastBytes(logs(ctx, n.c), 6<<10))
	}
}

func logs(ctx context.Context, c testcontainers.Container) string {
	if c == nil {
		return ""
	}
	rc, err := c.Logs(ctx)
	if err != nil {
		return fmt.Sprintf("(logs: %v)", err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, 8<<20))
	return string(b)
}

func tail(ctx context.Context, c testcontainers.Container) string {
	if c == nil {
		return ""
	}
	return "\n" + lastBytes(logs(ctx, c), 4<<10)
}

func lastBytes(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// pollSQL waits until PostgreSQL answers a query (its TCP port opens a
// moment before it accepts connections on some images).
func pollSQL(ctx context.Context, dsn string) error {
	deadline := time.Now().Add(60 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		c, err := pgx.Connect(ctx, dsn)
		if err == nil {
			_, err = c.Exec(ctx, "SELECT 1")
			c.Close(ctx)
			if err == nil {
				return nil
			}
		}
		last = err
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("PostgreSQL at %s not answering after 60s: %w", dsn, last)
}

// readyz reports whether n's /readyz answers 200.
func readyz(ctx context.Context, n *node) bool {
	u, err := n.url(ctx)
	if err != nil {
		return false
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
