// Command client-go-probe makes Kubernetes API calls with a real client-go client at its default
// retry settings and prints, per call, one JSON line: how long it took, how many HTTP round trips
// client-go made for it (its retries included), and the Status of the error, if any.
//
// It is built by test/apiserver-contract.e2e.test.ts into .tether/ (not by build.sh):
//
//	go build -o .tether/client-go-probe ./cmd/client-go-probe   (in scripts/kube)
//	client-go-probe --kubeconfig K --calls '[{"name":"x","verb":"get","group":"","version":"v1","resource":"configmaps","namespace":"ns","object":"cm"}]'
//
// verb is get, list or create (create takes "body", a JSON object).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
)

type call struct {
	Name            string          `json:"name"`
	Verb            string          `json:"verb"`
	Group           string          `json:"group"`
	Version         string          `json:"version"`
	Resource        string          `json:"resource"`
	Namespace       string          `json:"namespace"`
	Object          string          `json:"object"`
	ResourceVersion string          `json:"resourceVersion"`
	Body            json.RawMessage `json:"body"`
}

type result struct {
	Name       string               `json:"name"`
	Ms         float64              `json:"ms"`
	RoundTrips int64                `json:"roundTrips"`
	OK         bool                 `json:"ok"`
	Code       int32                `json:"code,omitempty"`
	Reason     string               `json:"reason,omitempty"`
	Message    string               `json:"message,omitempty"`
	RetryAfter int32                `json:"retryAfterSeconds,omitempty"`
	Causes     []metav1.StatusCause `json:"causes,omitempty"`
	Error      string               `json:"error,omitempty"`
}

type counting struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (c counting) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the client")
	calls := flag.String("calls", "[]", "JSON list of calls")
	timeout := flag.Duration("timeout", 3*time.Minute, "deadline of each call")
	flag.Parse()
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, "load kubeconfig:", err)
		os.Exit(2)
	}
	cfg.UserAgent = "client-go-probe/v0.37.2"
	var trips atomic.Int64
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return counting{rt, &trips} }
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(2)
	}
	var list []call
	if err := json.Unmarshal([]byte(*calls), &list); err != nil {
		fmt.Fprintln(os.Stderr, "parse --calls:", err)
		os.Exit(2)
	}
	out := json.NewEncoder(os.Stdout)
	for _, c := range list {
		gvr := schema.GroupVersionResource{Group: c.Group, Version: c.Version, Resource: c.Resource}
		var ri dynamic.ResourceInterface = client.Resource(gvr)
		if c.Namespace != "" {
			ri = client.Resource(gvr).Namespace(c.Namespace)
		}
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		before := trips.Load()
		start := time.Now()
		switch c.Verb {
		case "get":
			_, err = ri.Get(ctx, c.Object, metav1.GetOptions{ResourceVersion: c.ResourceVersion})
		case "list":
			_, err = ri.List(ctx, metav1.ListOptions{ResourceVersion: c.ResourceVersion})
		case "create":
			obj := &unstructured.Unstructured{}
			if err = obj.UnmarshalJSON(c.Body); err == nil {
				_, err = ri.Create(ctx, obj, metav1.CreateOptions{})
			}
		default:
			err = fmt.Errorf("unknown verb %q", c.Verb)
		}
		elapsed := time.Since(start)
		cancel()
		r := result{Name: c.Name, Ms: float64(elapsed.Microseconds()) / 1000, RoundTrips: trips.Load() - before, OK: err == nil}
		if status, ok := err.(apierrors.APIStatus); ok {
			s := status.Status()
			r.Code, r.Reason, r.Message = s.Code, string(s.Reason), s.Message
			if s.Details != nil {
				r.RetryAfter, r.Causes = s.Details.RetryAfterSeconds, s.Details.Causes
			}
		} else if err != nil {
			r.Error = err.Error()
		}
		_ = out.Encode(r)
	}
}
