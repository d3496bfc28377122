package mirror

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
)

// kubeAPI is all the agent asks of the apiserver: pods, this node's Node and
// Lease, and the server's version. It is this narrow, and served by a client
// of its own rather than client-go's clientset, because the clientset links
// every API group the apiserver has (its scheme registers ~55 groups at
// start): the agent's binary was 79 MB and its idle RSS ~45 MB, most of it
// pages of that code (issue 11). client-go's typed clients satisfy the
// narrow interfaces as they are, so the tests run on client-go's fake.
type kubeAPI interface {
	Pods(namespace string) podAPI
	Nodes() nodeAPI
	Leases(namespace string) leaseAPI
	ServerVersion(ctx context.Context) (*version.Info, error)
}

type podAPI interface {
	Create(ctx context.Context, pod *corev1.Pod, opts metav1.CreateOptions) (*corev1.Pod, error)
	List(ctx context.Context, opts metav1.ListOptions) (*corev1.PodList, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (*corev1.Pod, error)
}

type nodeAPI interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.Node, error)
	Create(ctx context.Context, node *corev1.Node, opts metav1.CreateOptions) (*corev1.Node, error)
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (*corev1.Node, error)
}

type leaseAPI interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*coordinationv1.Lease, error)
	Create(ctx context.Context, lease *coordinationv1.Lease, opts metav1.CreateOptions) (*coordinationv1.Lease, error)
	Update(ctx context.Context, lease *coordinationv1.Lease, opts metav1.UpdateOptions) (*coordinationv1.Lease, error)
}

// restAPI is kubeAPI on client-go's REST client, with a scheme of just the
// core and coordination groups.
type restAPI struct {
	core, coordination *rest.RESTClient
	params             runtime.ParameterCodec
}

// newRESTAPI makes the clients for rc. Both groups share one HTTP client
// (one connection pool) and one rate limiter, as a clientset's do.
func newRESTAPI(rc *rest.Config) (*restAPI, error) {
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("register core/v1: %w", err)
	}
	if err := coordinationv1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("register coordination.k8s.io/v1: %w", err)
	}
	// Options (ListOptions, DeleteOptions, …) and Status, unversioned as the
	// apiserver sends them.
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	codecs := serializer.NewCodecFactory(scheme)

	cfg := rest.CopyConfig(rc)
	if cfg.UserAgent == "" {
		cfg.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	if cfg.RateLimiter == nil && cfg.QPS > 0 {
		cfg.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(cfg.QPS, cfg.Burst)
	}
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("http client for %s: %w", cfg.Host, err)
	}
	group := func(apiPath string, gv schema.GroupVersion) (*rest.RESTClient, error) {
		c := rest.CopyConfig(cfg)
		c.APIPath, c.GroupVersion = apiPath, &gv
		c.NegotiatedSerializer = codecs.WithoutConversion()
		return rest.RESTClientForConfigAndClient(c, httpClient)
	}
	core, err := group("/api", corev1.SchemeGroupVersion)
	if err != nil {
		return nil, fmt.Errorf("client for core/v1 at %s: %w", cfg.Host, err)
	}
	coordination, err := group("/apis", coordinationv1.SchemeGroupVersion)
	if err != nil {
		return nil, fmt.Errorf("client for coordination.k8s.io/v1 at %s: %w", cfg.Host, err)
	}
	return &restAPI{core: core, coordination: coordination, params: runtime.NewParameterCodec(scheme)}, nil
}

func (c *restAPI) Pods(namespace string) podAPI {
	return restResource[*corev1.Pod, *corev1.PodList]{c.core, c.params, "pods", namespace,
		func() *corev1.Pod { return &corev1.Pod{} }, func() *corev1.PodList { return &corev1.PodList{} }}
}

func (c *restAPI) Nodes() nodeAPI {
	return restResource[*corev1.Node, *corev1.NodeList]{c.core, c.params, "nodes", "",
		func() *corev1.Node { return &corev1.Node{} }, func() *corev1.NodeList { return &corev1.NodeList{} }}
}

func (c *restAPI) Leases(namespace string) leaseAPI {
	return restResource[*coordinationv1.Lease, *coordinationv1.LeaseList]{c.coordination, c.params, "leases", namespace,
		func() *coordinationv1.Lease { return &coordinationv1.Lease{} }, func() *coordinationv1.LeaseList { return &coordinationv1.LeaseList{} }}
}

// ServerVersion is GET /version, as discovery's ServerVersion.
func (c *restAPI) ServerVersion(ctx context.Context) (*version.Info, error) {
	body, err := c.core.Get().AbsPath("/version").Do(ctx).Raw()
	if err != nil {
		return nil, err
	}
	var info version.Info
	if err := json.Unmarshal(body, &info); err != nil {
		return nil, fmt.Errorf("decode /version: %w", err)
	}
	return &info, nil
}

// apiObject is an API object: *corev1.Pod and the like.
type apiObject interface {
	runtime.Object
	GetName() string
}

// restResource is one resource (in one namespace, "" for all or for a
// cluster-scoped one), requests built as client-go's generated clients build
// them (k8s.io/client-go/gentype).
type restResource[T apiObject, L runtime.Object] struct {
	client    *rest.RESTClient
	params    runtime.ParameterCodec
	name      string
	namespace string
	newObj    func() T
	newList   func() L
}

func (r restResource[T, L]) req(verb string) *rest.Request {
	return r.client.Verb(verb).NamespaceIfScoped(r.namespace, r.namespace != "").Resource(r.name)
}

// into decodes a response into out; out is returned even on an error, as
// client-go's typed clients return it.
func into[O runtime.Object](res rest.Result, out O) (O, error) {
	return out, res.Into(out)
}

func (r restResource[T, L]) Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error) {
	return into(r.req(http.MethodGet).Name(name).VersionedParams(&opts, r.params).Do(ctx), r.newObj())
}

func (r restResource[T, L]) List(ctx context.Context, opts metav1.ListOptions) (L, error) {
	var timeout time.Duration
	if opts.TimeoutSeconds != nil {
		timeout = time.Duration(*opts.TimeoutSeconds) * time.Second
	}
	return into(r.req(http.MethodGet).VersionedParams(&opts, r.params).Timeout(timeout).Do(ctx), r.newList())
}

func (r restResource[T, L]) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	var timeout time.Duration
	if opts.TimeoutSeconds != nil {
		timeout = time.Duration(*opts.TimeoutSeconds) * time.Second
	}
	opts.Watch = true
	return r.req(http.MethodGet).VersionedParams(&opts, r.params).Timeout(timeout).Watch(ctx)
}

func (r restResource[T, L]) Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error) {
	return into(r.req(http.MethodPost).VersionedParams(&opts, r.params).Body(obj).Do(ctx), r.newObj())
}

func (r restResource[T, L]) Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error) {
	return into(r.req(http.MethodPut).Name(obj.GetName()).VersionedParams(&opts, r.params).Body(obj).Do(ctx), r.newObj())
}

func (r restResource[T, L]) Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error {
	return r.req(http.MethodDelete).Name(name).Body(&opts).Do(ctx).Error()
}

func (r restResource[T, L]) Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (T, error) {
	return into(r.client.Patch(pt).NamespaceIfScoped(r.namespace, r.namespace != "").Resource(r.name).
		Name(name).SubResource(subresources...).VersionedParams(&opts, r.params).Body(data).Do(ctx), r.newObj())
}
