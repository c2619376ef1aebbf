package devserver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"
)

// ensureNamespace makes the namespace match the options once the frontend answers. On
// SQLite the namespace and its search attributes were written into the database before
// start; on PostgreSQL they are registered here, through the frontend and the operator
// service, as against any Temporal cluster. A namespace that an older run created with
// another retention gets the new one.
func (s *Server) ensureNamespace(ctx context.Context) error {
	c, err := client.Dial(client.Options{HostPort: s.addr, Namespace: s.opts.Namespace, Logger: discard})
	if err != nil {
		return fmt.Errorf("devserver: dial: %w", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if s.opts.DatabaseURL != "" {
		_, err := c.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
			Namespace: s.opts.Namespace, WorkflowExecutionRetentionPeriod: durationpb.New(s.opts.Retention),
		})
		var exists *serviceerror.NamespaceAlreadyExists
		if err != nil && !errors.As(err, &exists) {
			return fmt.Errorf("devserver: register namespace %q: %w", s.opts.Namespace, err)
		}
		if err := s.addSearchAttributes(ctx, c); err != nil {
			return err
		}
	}
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

// addSearchAttributes adds the options' search attributes the namespace lacks (SQL
// visibility maps them to spare columns per namespace).
func (s *Server) addSearchAttributes(ctx context.Context, c client.Client) error {
	have, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: s.opts.Namespace})
	if err != nil {
		return fmt.Errorf("devserver: list search attributes: %w", err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for name, typ := range s.opts.SearchAttributes {
		if _, ok := have.GetCustomAttributes()[name]; !ok {
			missing[name] = typ
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if _, err := c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: s.opts.Namespace, SearchAttributes: missing,
	}); err != nil {
		return fmt.Errorf("devserver: add search attributes %v: %w", missing, err)
	}
	return s.awaitSearchAttributes(ctx, c, missing)
}

// awaitSearchAttributes returns once the frontend accepts a query on every attribute in
// names. The frontend maps an attribute's name to its column from its namespace cache,
// which reloads every few seconds (system.namespaceCacheRefreshInterval): until then a
// run started with a new attribute would be refused.
func (s *Server) awaitSearchAttributes(ctx context.Context, c client.Client, names map[string]enumspb.IndexedValueType) error {
	var terms []string
	for name := range names {
		terms = append(terms, name+" IS NULL")
	}
	query := strings.Join(terms, " AND ")
	for {
		_, err := c.WorkflowService().CountWorkflowExecutions(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: s.opts.Namespace, Query: query})
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("devserver: search attributes %v not usable yet: %w", slices.Sorted(maps.Keys(names)), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
