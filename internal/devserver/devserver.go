// Package devserver embeds a single-node Temporal server (SQLite persistence) and the
// Temporal Web UI in the current process. Only cmd/ and tests import it: the server is a
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
	"path/filepath"
	"strconv"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uiserveroptions "github.com/temporalio/ui-server/v2/server/server_options"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/membership/static"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Options configures the embedded server. The zero value of every field but Namespace is a
// documented default.
type Options struct {
	// Namespace to create. Default "default".
	Namespace string
	// DataDir holds the SQLite database (temporal.db). Empty with InMemory false means ".tempest".
	DataDir string
	// InMemory keeps nothing on disk.
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
	if o.DataDir == "" && !o.InMemory {
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
	conf, err := o.config()
	if err != nil {
		return nil, err
	}
	logger := log.NewZapLogger(log.BuildZapLogger(log.Config{Level: o.LogLevel}))
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
		dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key():      true,
		dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key(): 1000,
		dynamicconfig.FrontendMaxNamespaceRPSPerInstance.Key():           100000,
		dynamicconfig.HistoryCacheHostLevelMaxSize.Key():                 8096,
		// One partition per task queue: a single node gains nothing from more, and task
		// priority orders work within a partition only.
		dynamicconfig.MatchingNumTaskqueueReadPartitions.Key():  1,
		dynamicconfig.MatchingNumTaskqueueWritePartitions.Key(): 1,
	}
	srv, err := temporal.NewServer(
		temporal.WithConfig(conf),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(hosts),
		temporal.WithLogger(logger),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
		temporal.WithDynamicConfigClient(dyn),
	)
	if err != nil {
		return nil, fmt.Errorf("devserver: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("devserver: start: %w", err)
	}
	s := &Server{opts: o, server: srv, addr: net.JoinHostPort(o.IP, strconv.Itoa(o.Port))}
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

// Stop stops the UI and the server.
func (s *Server) Stop() {
	if s.ui != nil {
		s.ui.Stop()
	}
	s.server.Stop()
}

// ensureNamespace applies the retention to a namespace that an older run of the same data
// dir may have created with another one. (Search attributes are added by adapter.New.)
func (s *Server) ensureNamespace(ctx context.Context) error {
	c, err := client.Dial(client.Options{HostPort: s.addr, Namespace: s.opts.Namespace, Logger: discard})
	if err != nil {
		return fmt.Errorf("devserver: dial: %w", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ns, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: s.opts.Namespace})
	if err != nil {
		return fmt.Errorf("devserver: describe namespace: %w", err)
	}
	if ns.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration() != s.opts.Retention {
		cfg := ns.GetConfig()
		cfg.WorkflowExecutionRetentionTtl = durationpb.New(s.opts.Retention)
		if _, err := c.WorkflowService().UpdateNamespace(ctx, &workflowservice.UpdateNamespaceRequest{
			Namespace: s.opts.Namespace, Config: cfg,
		}); err != nil {
			return fmt.Errorf("devserver: set retention: %w", err)
		}
	}
	return nil
}

func (o Options) config() (*config.Config, error) {
	var conf config.Config
	conf.Global.Membership.MaxJoinDuration = 30 * time.Second
	conf.Global.Membership.BroadcastAddress = o.IP
	conf.Persistence.DefaultStore = "sqlite"
	conf.Persistence.VisibilityStore = "sqlite"
	conf.Persistence.NumHistoryShards = 1
	sql, err := o.sqlConfig()
	if err != nil {
		return nil, err
	}
	conf.Persistence.DataStores = map[string]config.DataStore{"sqlite": {SQL: sql}}
	httpPort, err := freePort(o.IP)
	if err != nil {
		return nil, err
	}
	conf.ClusterMetadata = &cluster.Config{
		FailoverVersionIncrement: 10,
		MasterClusterName:        "active",
		CurrentClusterName:       "active",
		ClusterInformation: map[string]cluster.ClusterInformation{"active": {
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

func (o Options) sqlConfig() (*config.SQL, error) {
	conf := &config.SQL{PluginName: sqliteplugin.PluginName}
	if o.InMemory {
		conf.ConnectAttributes = map[string]string{"mode": "memory", "cache": "shared"}
		conf.DatabaseName = "tempest-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	} else {
		if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("devserver: data dir: %w", err)
		}
		conf.ConnectAttributes = map[string]string{"mode": "rwc", "_journal_mode": "WAL", "_synchronous": "NORMAL"}
		conf.DatabaseName = filepath.Join(o.DataDir, "temporal.db")
		if _, err := os.Stat(conf.DatabaseName); errors.Is(err, os.ErrNotExist) {
			if err := sqliteschema.SetupSchema(conf); err != nil {
				return nil, fmt.Errorf("devserver: schema: %w", err)
			}
		}
	}
	ns, err := sqliteschema.NewNamespaceConfig("active", o.Namespace, false, o.SearchAttributes)
	if err != nil {
		return nil, fmt.Errorf("devserver: namespace: %w", err)
	}
	ns.Detail.Config.Retention = durationpb.New(o.Retention)
	if err := sqliteschema.CreateNamespaces(conf, ns); err != nil {
		return nil, fmt.Errorf("devserver: namespace: %w", err)
	}
	return conf, nil
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
