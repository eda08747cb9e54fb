package workflows

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// wireDefs maps each definition of docs/contract.schema.json to the wire
// struct that writes and reads it.
func wireDefs() map[string]any {
	return map[string]any{
		"job_input":          wireJob{},
		"poll":               wirePoll{},
		"job_result":         wireResult{},
		"job_status":         wireStatus{},
		"escalation_details": wireEscalation{},
		"decision":           wireDecision{},
		"decision_result":    wireDecisionResult{},
		"batch_input":        wireBatch{},
		"batch_source":       wireSource{},
		"batch_progress":     wireProgress{},
		"account_pause":      wirePause{},
		"batch_result":       wireBatchResult{},
		"job_outcome":        wireOutcome{},
		"batch_decision":     wireDecision{},
	}
}

// refOf names the definition a Go type is written as, if any.
func refOf(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case reflect.TypeFor[Duration]():
		return "duration"
	case reflect.TypeFor[time.Time]():
		return "time"
	case reflect.TypeFor[LipSyncInput]():
		return "job_input"
	}
	for name, v := range wireDefs() {
		if reflect.TypeOf(v) == t && name != "batch_decision" {
			return name
		}
	}
	return ""
}

// schemaOf is the part of a property's schema that the Go type decides.
func schemaOf(t reflect.Type) map[string]any {
	if ref := refOf(t); ref != "" {
		return map[string]any{"$ref": "#/$defs/" + ref}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem())}
	}
	panic("schemaOf: no schema for " + t.String())
}

// decided keeps the members of a property's schema that schemaOf decides.
func decided(prop map[string]any) map[string]any {
	out := map[string]any{}
	for _, k := range []string{"$ref", "type"} {
		if v, ok := prop[k]; ok {
			out[k] = v
		}
	}
	if items, ok := prop["items"].(map[string]any); ok {
		out["items"] = decided(items)
	}
	return out
}

// TestSchemaMatchesTheWireTypes holds docs/contract.schema.json to the wire
// structs: every definition has exactly their members, of their types, the
// members written always (no omitempty) required, and no other.
func TestSchemaMatchesTheWireTypes(t *testing.T) {
	b, err := os.ReadFile("../docs/contract.schema.json")
	require.NoError(t, err)
	var schema struct {
		Defs map[string]map[string]any `json:"$defs"`
	}
	require.NoError(t, json.Unmarshal(b, &schema))
	var names []string
	for name := range schema.Defs {
		if name != "duration" && name != "time" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var want []string
	for name := range wireDefs() {
		want = append(want, name)
	}
	slices.Sort(want)
	require.Equal(t, want, names, "the schema defines exactly the wire structs")

	for name, v := range wireDefs() {
		def := schema.Defs[name]
		require.Equal(t, "object", def["type"], name)
		require.Equal(t, false, def["additionalProperties"], name)
		props, _ := def["properties"].(map[string]any)
		var required []string
		for _, r := range def["required"].([]any) {
			required = append(required, r.(string))
		}
		t.Run(name, func(t *testing.T) {
			rt := reflect.TypeOf(v)
			var members, always []string
			for i := range rt.NumField() {
				f := rt.Field(i)
				member, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
				require.NotEmpty(t, member, "%s.%s has a json name", rt.Name(), f.Name)
				require.Regexp(t, `^[a-z0-9]+(_[a-z0-9]+)*$`, member, "snake_case")
				members = append(members, member)
				if !strings.Contains(opts, "omitempty") {
					always = append(always, member)
				}
				prop, ok := props[member].(map[string]any)
				require.True(t, ok, "the schema's %s has %s", name, member)
				require.Equal(t, schemaOf(f.Type), decided(prop), "%s.%s", name, member)
				require.NotEmpty(t, prop, "%s.%s", name, member)
			}
			slices.Sort(members)
			var defined []string
			for member := range props {
				defined = append(defined, member)
			}
			slices.Sort(defined)
			require.Equal(t, members, defined, "the schema's %s has no other member", name)
			slices.Sort(always)
			slices.Sort(required)
			require.Equal(t, always, required, "the schema's %s requires exactly the members always written", name)
		})
	}

	// The stated duration form: what Go writes matches it, and what it
	// admits Go reads.
	pattern := regexp.MustCompile(schema.Defs["duration"]["pattern"].(string))
	for _, d := range []time.Duration{0, 1500 * time.Millisecond, 90 * time.Second, 10 * time.Minute, 90 * time.Minute, 168 * time.Hour, 250 * time.Microsecond} {
		require.Regexp(t, pattern, d.String())
	}
	for _, s := range []string{"10m", "1h30m", "1.5s", "90s", "0", "1h0m0s", "500ms"} {
		require.Regexp(t, pattern, s)
		_, err := Duration(s).parse("d")
		require.NoError(t, err, s)
	}
	for _, s := range []string{"-5s", "10", "1 h", "P1D", "1d"} {
		require.NotRegexp(t, pattern, s)
	}
	require.Equal(t, "date-time", schema.Defs["time"]["format"])
}

// TestTheContractsNamesAreTheVendors pins the names the issue asks for.
func TestTheContractsNamesAreTheVendors(t *testing.T) {
	has := func(v any, names ...string) {
		t.Helper()
		got := jsonNames(reflect.TypeOf(v))
		for _, n := range names {
			require.True(t, got[n], "%T has %s", v, n)
		}
	}
	has(wireJob{}, "reference_id", "video_url", "audio_url", "disable_active_speaker_detection")
	has(wireResult{}, "reference_id", "request_id", "output_url")
	has(wireStatus{}, "request_id", "error_message")
	has(wireEscalation{}, "request_id", "error_message")
}
