// Package devserver embeds a single-node Temporal server (SQLite or PostgreSQL persistence)
// and the Temporal Web UI in the current process. Only cmd/ and tests import it: the server is a
// large dependency that function authors never need.
package devserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uiserveroptions "github.com/temporalio/ui-server/v2/server/server_options"
	enumspb "go.temporal.io/api/enums/v1"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/membership/static"
	"go.temporal.io/server/common/primitives"
	"go.temporal.io/server/temporal"
)

// Options configures the embedded server. The zero value of every field but Namespace is a
// documented default.
type Options struct {
	// Namespace to create. Default "default".
	Namespace string
	// DataDir holds the SQLite database (temporal.db). Empty with InMemory false means ".tempest".
	DataDir string
	// InMemory keeps nothing on disk: the SQLite database is a file on tmpfs (/dev/shm,
	// else the temporary directory), removed by Stop.
	InMemory bool
	// IP to bind. Default 127.0.0.1.
	IP string
	// Port of the frontend gRPC service. Default 7233; -1 picks a free port.
	Port int
	// UIPort of the Web UI. 0 disables the UI.
	UIPort int
	// Retention of closed workflows. Default 30 days.
	Retention time.Duration
	// SearchAttributes to register in the namespace (Keyword etc.).
	SearchAttributes map[string]enumspb.IndexedValueType
	// LogLevel of the server's own log ("error" by default; "warn", "info", "debug").
	LogLevel string
	// DatabaseURL selects PostgreSQL instead of SQLite (DataDir and InMemory then unused):
	// postgres://user[:password]@host[:port]/dbname[?sslmode=...]. The server uses dbname
	// (default "temporal") and dbname_visibility, creates both and their schema when
	// missing, and updates an older schema.
	DatabaseURL string
	// HistoryShards is fixed when a server first starts on a database. 0 takes an existing
	// database's count, else 1 on SQLite and 4 on PostgreSQL; a count other than an
	// existing database's is an error.
	HistoryShards int
	// QueuePollRPS is how often a shard's transfer and timer queues may be read per second
	// (Temporal's history.transferProcessorMaxPollRPS and timerProcessorMaxPollRPS; 0 keeps
	// Temporal's 20). At 20, back-to-back starts without eager start (a worker in another
	// process) wait up to 50 ms for the task that hands their first workflow task to
	// matching; at 1000 they wait about 1 ms, and under load the readers fetch smaller
	// batches (on this 2-core machine, 10–20 % less throughput with SQLite).
	QueuePollRPS int

	ramDir string // InMemory: the directory of the database file, removed by Stop
}

// Server is a running embedded Temporal server.
type Server struct {
	opts   Options
	server temporal.Server
	ui     *uiserver.Server
	addr   string
}

// Start builds and starts the server; it returns once the frontend answers.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.IP == "" {
		o.IP = "127.0.0.1"
	}
	if o.Port == 0 {
		o.Port = 7233
	}
	if o.Retention == 0 {
		o.Retention = 30 * 24 * time.Hour
	}
	if o.Retention < 24*time.Hour {
		return nil, fmt.Errorf("devserver: retention %s is below Temporal's minimum of 24h", o.Retention)
	}
	if o.LogLevel == "" {
		o.LogLevel = "error"
	}
	if o.DatabaseURL != "" && o.InMemory {
		return nil, errors.New("devserver: InMemory and DatabaseURL exclude each other: choose SQLite in memory or PostgreSQL")
	}
	if o.HistoryShards < 0 {
		return nil, fmt.Errorf("devserver: HistoryShards %d is negative", o.HistoryShards)
	}
	if o.DataDir == "" && !o.InMemory && o.DatabaseURL == "" {
		o.DataDir = ".tempest"
	}
	var err error
	if o.Port < 0 {
		if o.Port, err = freePort(o.IP); err != nil {
			return nil, err
		}
	}
	// The server reacts to a taken port with a fatal log (a stack trace) and os.Exit, so
	// the port is tried here first, as the Web UI's is.
	probe, err := net.Listen("tcp", net.JoinHostPort(o.IP, strconv.Itoa(o.Port)))
	if err != nil {
		return nil, fmt.Errorf("devserver: Temporal port: %w", err)
	}
	probe.Close()
	if o.InMemory {
		removeStaleRAMDirs(ramRoot())
		if o.ramDir, err = os.MkdirTemp(ramRoot(), fmt.Sprintf("tempest-temporal-%d-", os.Getpid())); err != nil {
			return nil, fmt.Errorf("devserver: in-memory database: %w", err)
		}
	}
	s := &Server{opts: o}
	started := false
	defer func() {
		if !started {
			s.removeRAMDir()
		}
	}()
	logger := log.NewZapLogger(log.BuildZapLogger(log.Config{Level: o.LogLevel}))
	conf, err := o.config(ctx, logger)
	if err != nil {
		return nil, err
	}
	authorizer, err := authorization.GetAuthorizerFromConfig(&conf.Global.Authorization)
	if err != nil {
		return nil, fmt.Errorf("devserver: authorizer: %w", err)
	}
	claimMapper, err := authorization.GetClaimMapperFromConfig(&conf.Global.Authorization, logger)
	if err != nil {
		return nil, fmt.Errorf("devserver: claim mapper: %w", err)
	}
	hosts := map[primitives.ServiceName]static.Hosts{}
	for name, svc := range conf.Services {
		hosts[primitives.ServiceName(name)] = static.SingleLocalHost(net.JoinHostPort(o.IP, strconv.Itoa(svc.RPC.GRPCPort)))
	}
	dyn := dynamicconfig.StaticClient{
		dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key(): 1000,
		dynamicconfig.FrontendMaxNamespaceRPSPerInstance.Key():           100000,
		dynamicconfig.HistoryCacheHostLevelMaxSize.Key():                 8096,
		// One partition per task queue: a single node gains nothing from more, and task
		// priority orders work within a partition only.
		dynamicconfig.MatchingNumTaskqueueReadPartitions.Key():  1,
		dynamicconfig.MatchingNumTaskqueueWritePartitions.Key(): 1,
	}
	if o.QueuePollRPS > 0 {
		dyn[dynamicconfig.TransferProcessorMaxPollRPS.Key()] = o.QueuePollRPS
		dyn[dynamicconfig.TimerProcessorMaxPollRPS.Key()] = o.QueuePollRPS
	}
	var custom []temporal.ServerOption
	if conf.Persistence.VisibilityStore == visibilityStoreName {
		custom = append(custom, temporal.WithCustomVisibilityStoreFactory(visibilityFactory{main: conf.Persistence.DataStores["sqlite"].SQL}))
	}
	srv, err := temporal.NewServer(append(custom,
		temporal.WithConfig(conf),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(hosts),
		temporal.WithLogger(logger),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
		temporal.WithDynamicConfigClient(dyn),
	)...)
	if err != nil {
		return nil, fmt.Errorf("devserver: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("devserver: start: %w", err)
	}
	o.HistoryShards = int(conf.Persistence.NumHistoryShards)
	s.opts, s.server, s.addr = o, srv, net.JoinHostPort(o.IP, strconv.Itoa(o.Port))
	if err := s.ensureNamespace(ctx); err != nil {
		srv.Stop()
		return nil, err
	}
	if o.UIPort > 0 {
		s.ui = uiserver.NewServer(uiserveroptions.WithConfigProvider(&uiconfig.Config{
			Host:                o.IP,
			Port:                o.UIPort,
			TemporalGRPCAddress: s.addr,
			EnableUI:            true,
			CORS:                uiconfig.CORS{CookieInsecure: true},
			HideLogs:            true,
			DisableNewsFetch:    true,
			DefaultNamespace:    o.Namespace,
		}))
		ln, err := net.Listen("tcp", net.JoinHostPort(o.IP, strconv.Itoa(o.UIPort)))
		if err != nil {
			srv.Stop()
			return nil, fmt.Errorf("devserver: Web UI port: %w", err)
		}
		ln.Close() // the UI server binds itself; this only reports a taken port early
		go func() { _ = s.ui.Start() }()
	}
	started = true
	return s, nil
}

// Address is the frontend's host:port.
func (s *Server) Address() string { return s.addr }

// Namespace is the namespace the server created.
func (s *Server) Namespace() string { return s.opts.Namespace }

// UIURL is the Web UI's address, or "" when it is off.
func (s *Server) UIURL() string {
	if s.ui == nil {
		return ""
	}
	return "http://" + net.JoinHostPort(s.opts.IP, strconv.Itoa(s.opts.UIPort))
}

// Storage describes where the server keeps its data, for people (no password).
func (s *Server) Storage() string {
	switch {
	case s.opts.DatabaseURL != "":
		m, _, _ := postgresConfigs(s.opts.DatabaseURL)
		return fmt.Sprintf("PostgreSQL %s on %s, %d history shards", m.DatabaseName, m.ConnectAddr, s.opts.HistoryShards)
	case s.opts.InMemory:
		return "in memory"
	}
	return "SQLite in " + s.opts.DataDir
}

// HistoryShards is the server's number of history shards.
func (s *Server) HistoryShards() int { return s.opts.HistoryShards }

// Stop stops the UI and the server.
func (s *Server) Stop() {
	if s.ui != nil {
		s.ui.Stop()
	}
	s.server.Stop()
	s.removeRAMDir()
}

func (s *Server) removeRAMDir() {
	if s.opts.ramDir != "" {
		_ = os.RemoveAll(s.opts.ramDir)
	}
}

func (o Options) config(ctx context.Context, logger log.Logger) (*config.Config, error) {
	var conf config.Config
	conf.Global.Membership.MaxJoinDuration = 30 * time.Second
	conf.Global.Membership.BroadcastAddress = o.IP
	var err error
	if o.DatabaseURL != "" {
		conf.Persistence, err = o.postgresPersistence(ctx, logger)
	} else {
		conf.Persistence, err = o.sqlitePersistence(ctx, logger)
	}
	if err != nil {
		return nil, err
	}
	httpPort, err := freePort(o.IP)
	if err != nil {
		return nil, err
	}
	conf.ClusterMetadata = &cluster.Config{
		FailoverVersionIncrement: 10,
		MasterClusterName:        clusterName,
		CurrentClusterName:       clusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{clusterName: {
			Enabled:                true,
			InitialFailoverVersion: 1,
			RPCAddress:             net.JoinHostPort(o.IP, strconv.Itoa(o.Port)),
			HTTPAddress:            net.JoinHostPort(o.IP, strconv.Itoa(httpPort)),
			ClusterID:              "tempest-dev",
		}},
	}
	conf.DCRedirectionPolicy.Policy = "noop"
	conf.Services = map[string]config.Service{}
	for _, name := range []string{"frontend", "history", "matching", "worker"} {
		var svc config.Service
		svc.RPC.BindOnIP = o.IP
		if name == "frontend" {
			svc.RPC.GRPCPort = o.Port
			svc.RPC.HTTPPort = httpPort
		} else if svc.RPC.GRPCPort, err = freePort(o.IP); err != nil {
			return nil, err
		}
		conf.Services[name] = svc
	}
	conf.Archival.History.State = "disabled"
	conf.Archival.Visibility.State = "disabled"
	conf.NamespaceDefaults.Archival.History.State = "disabled"
	conf.NamespaceDefaults.Archival.Visibility.State = "disabled"
	conf.PublicClient.HostPort = net.JoinHostPort(o.IP, strconv.Itoa(o.Port))
	return &conf, nil
}

// freePort picks a port for one of the server's listeners, which bind it only later. It
// picks below Linux's ephemeral range (32768 and up), where the kernel hands out ports for
// outgoing connections and port-0 listeners: a port picked there can be taken by any
// connection in the gap, and the Temporal server then exits the whole process.
func freePort(ip string) (int, error) {
	for range 100 {
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l.Close()
		return port, nil
	}
	return 0, fmt.Errorf("devserver: no free port between 20000 and 32000 on %s", ip)
}

// discard silences the SDK clients the server package opens for itself.
var discard = sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))
