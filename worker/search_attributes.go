package main

import (
	"context"
	"fmt"
	"log/slog"
	"sort"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/chamelaion-lipsync/worker/workflows"
)

// ensureSearchAttributes registers the workflows' custom search attributes
// in the namespace when missing, so an operator can filter jobs in the Web
// UI. An attribute that exists with another type is an error.
func ensureSearchAttributes(ctx context.Context, tc client.Client, namespace string, logger *slog.Logger) error {
	have, err := tc.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes of namespace %s: %w", namespace, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	var names []string
	for name, typ := range workflows.SearchAttributes() {
		existing, ok := have.GetCustomAttributes()[name]
		switch {
		case !ok:
			missing[name] = typ
			names = append(names, name)
		case existing != typ:
			return fmt.Errorf("search attribute %s exists in namespace %s as %s, want %s", name, namespace, existing, typ)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(names)
	req := &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: missing}
	if _, err := tc.OperatorService().AddSearchAttributes(ctx, req); err != nil {
		return fmt.Errorf("register search attributes %v in namespace %s (register them once with `temporal operator search-attribute create`, or grant the worker that permission): %w", names, namespace, err)
	}
	logger.Info("registered search attributes", "namespace", namespace, "names", names)
	return nil
}
