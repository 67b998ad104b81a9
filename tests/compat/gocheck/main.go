// gocheck reads the TFJobs of a namespace twice — decoded into the upstream Go API types
// (github.com/kubeflow/training-operator/pkg/apis/kubeflow.org/v1, which Kueue and other Go
// tools use) through a controller-runtime client, and as raw JSON — and checks that what the
// Go types decode is what is stored: replica types, runPolicy, status conditions and
// replicaStatuses. Fields only tfjob-operator writes (replicaStatuses[*].restarts and
// status.state) are the expected difference: Go clients do not see them. status.state is checked
// against the conditions the Go types decode: the type of the newest one that is True.
//
// Usage: gocheck NAMESPACE (KUBECONFIG names the cluster). Prints one line per job and
// "gocheck: N passed, M failed"; exits non-zero on any mismatch or when there is no TFJob.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"sort"

	kubeflowv1 "github.com/kubeflow/training-operator/pkg/apis/kubeflow.org/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
)

// ourExtensions are fields tfjob-operator writes that the upstream types do not have.
var ourExtensions = map[string][]string{"replicaStatus": {"restarts"}}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gocheck NAMESPACE")
		os.Exit(2)
	}
	namespace := os.Args[1]
	passed, failed, err := check(context.Background(), namespace)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gocheck:", err)
		os.Exit(1)
	}
	fmt.Printf("gocheck: %d passed, %d failed\n", passed, failed)
	if failed > 0 || passed == 0 {
		os.Exit(1)
	}
}

func check(ctx context.Context, namespace string) (int, int, error) {
	cfg, err := config.GetConfig()
	if err != nil {
		return 0, 0, fmt.Errorf("kubeconfig: %w", err)
	}
	scheme := runtime.NewScheme()
	if err := kubeflowv1.AddToScheme(scheme); err != nil {
		return 0, 0, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return 0, 0, err
	}
	var typed kubeflowv1.TFJobList
	if err := c.List(ctx, &typed, client.InNamespace(namespace)); err != nil {
		return 0, 0, fmt.Errorf("listing TFJobs with the Go types: %w", err)
	}
	raw := &unstructured.UnstructuredList{}
	raw.SetGroupVersionKind(schema.GroupVersionKind{Group: "kubeflow.org", Version: "v1", Kind: "TFJobList"})
	if err := c.List(ctx, raw, client.InNamespace(namespace)); err != nil {
		return 0, 0, fmt.Errorf("listing TFJobs as JSON: %w", err)
	}
	byName := map[string]kubeflowv1.TFJob{}
	for _, job := range typed.Items {
		byName[job.Name] = job
	}
	passed, failed := 0, 0
	for _, stored := range raw.Items {
		job, ok := byName[stored.GetName()]
		problems := []string{"not decoded by the Go types"}
		if ok {
			problems = compare(stored.Object, &job)
		}
		if len(problems) == 0 {
			passed++
			fmt.Printf("ok   %s (%d replica types, %d conditions)\n", job.Name, len(job.Spec.TFReplicaSpecs), len(job.Status.Conditions))
			continue
		}
		failed++
		for _, p := range problems {
			fmt.Printf("FAIL %s: %s\n", stored.GetName(), p)
		}
	}
	return passed, failed, nil
}

// compare returns what differs between the stored JSON and the decoded job.
func compare(stored map[string]interface{}, job *kubeflowv1.TFJob) []string {
	var problems []string
	same := func(what string, want interface{}, decoded interface{}) {
		got := asJSON(decoded)
		if !reflect.DeepEqual(asJSON(want), got) {
			problems = append(problems, fmt.Sprintf("%s: stored %s, Go decoded %s", what, show(want), show(got)))
		}
	}
	spec, _ := stored["spec"].(map[string]interface{})
	specs, _ := spec["tfReplicaSpecs"].(map[string]interface{})
	if len(specs) != len(job.Spec.TFReplicaSpecs) {
		problems = append(problems, fmt.Sprintf("replica types: stored %v, decoded %v", keys(specs), len(job.Spec.TFReplicaSpecs)))
	}
	for key, want := range specs {
		got, ok := job.Spec.TFReplicaSpecs[kubeflowv1.ReplicaType(key)]
		if !ok {
			problems = append(problems, fmt.Sprintf("replica type %q not decoded", key))
			continue
		}
		same("tfReplicaSpecs."+key, want, got)
	}
	same("runPolicy", spec["runPolicy"], job.Spec.RunPolicy)
	status, _ := stored["status"].(map[string]interface{})
	same("status.conditions", orEmpty(status["conditions"]), job.Status.Conditions)
	statuses, _ := status["replicaStatuses"].(map[string]interface{})
	for key, want := range statuses {
		got := job.Status.ReplicaStatuses[kubeflowv1.ReplicaType(key)]
		same("status.replicaStatuses."+key, without(want, ourExtensions["replicaStatus"]), got)
	}
	if len(statuses) != len(job.Status.ReplicaStatuses) {
		problems = append(problems, fmt.Sprintf("replicaStatuses: stored %v, decoded %d", keys(statuses), len(job.Status.ReplicaStatuses)))
	}
	word, _ := status["state"].(string)
	if newest := newestTrue(job.Status.Conditions); word != newest {
		problems = append(problems, fmt.Sprintf("status.state %q, but the newest True condition the Go types decode is %q", word, newest))
	}
	return problems
}

// newestTrue is the type of the newest condition whose status is True ("" when none is).
func newestTrue(conditions []kubeflowv1.JobCondition) string {
	for i := len(conditions) - 1; i >= 0; i-- {
		if conditions[i].Status == "True" {
			return string(conditions[i].Type)
		}
	}
	return ""
}

// asJSON is what the Go value serializes to, as generic JSON.
func asJSON(v interface{}) interface{} {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	var out interface{}
	_ = json.Unmarshal(data, &out)
	return normalize(out)
}

// normalize drops empty objects, empty lists and nulls, which either side may leave out.
func normalize(v interface{}) interface{} {
	switch x := v.(type) {
	case map[string]interface{}:
		out := map[string]interface{}{}
		for k, e := range x {
			if n := normalize(e); n != nil {
				out[k] = n
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case []interface{}:
		if len(x) == 0 {
			return nil
		}
		out := make([]interface{}, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case float64, int64, int, bool, string:
		return x
	case nil:
		return nil
	default:
		return asJSON(x)
	}
}

func without(v interface{}, fields []string) interface{} {
	m, ok := v.(map[string]interface{})
	if !ok {
		return v
	}
	out := map[string]interface{}{}
	for k, e := range m {
		out[k] = e
	}
	for _, f := range fields {
		delete(out, f)
	}
	return out
}

func orEmpty(v interface{}) interface{} {
	if v == nil {
		return []interface{}{}
	}
	return v
}

func keys(m map[string]interface{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func show(v interface{}) string {
	data, _ := json.Marshal(v)
	return string(data)
}
