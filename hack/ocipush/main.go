// Command ocipush uploads an OCI image layout tarball (as built by hack/dev-containerd) to a
// registry over the Docker Registry HTTP API v2, without docker, skopeo or crane: the dev
// registry is empty on a fresh machine and Debian packages no push client.
//
//	go run ./hack/ocipush -layout /var/lib/ledgerlet-dev/cache/busybox.tar -registry 127.0.0.1:5000 -image busybox:1.36
//	go run ./hack/ocipush -registry 127.0.0.1:5000 -ping
//
// Plain HTTP only; meant for a registry on loopback.
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"time"
)

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

type index struct {
	Manifests []descriptor `json:"manifests"`
}

type manifest struct {
	MediaType string       `json:"mediaType"`
	Config    descriptor   `json:"config"`
	Layers    []descriptor `json:"layers"`
}

func main() {
	layout := flag.String("layout", "", "OCI layout tarball to push")
	registry := flag.String("registry", "127.0.0.1:5000", "registry host:port (plain HTTP)")
	image := flag.String("image", "", "repository:tag to push as, e.g. busybox:1.36")
	ping := flag.Bool("ping", false, "only check that the registry answers /v2/")
	timeout := flag.Duration("timeout", time.Minute, "overall timeout")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	p := pusher{client: &http.Client{}, base: "http://" + *registry}
	var err error
	if *ping {
		err = p.ping(ctx)
	} else {
		err = p.pushLayout(ctx, *layout, *image)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ocipush:", err)
		os.Exit(1)
	}
}

type pusher struct {
	client *http.Client
	base   string
}

func (p pusher) ping(ctx context.Context) error {
	resp, err := p.do(ctx, http.MethodGet, p.base+"/v2/", "", nil)
	if err != nil {
		return fmt.Errorf("ping %s: %w", p.base, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ping %s: %s", p.base, resp.Status)
	}
	return nil
}

func (p pusher) pushLayout(ctx context.Context, layoutPath, image string) error {
	repo, tag, ok := strings.Cut(image, ":")
	if !ok || repo == "" || tag == "" {
		return fmt.Errorf("image %q: want repository:tag", image)
	}
	files, err := readTar(layoutPath)
	if err != nil {
		return fmt.Errorf("read layout %s: %w", layoutPath, err)
	}
	var idx index
	if err := json.Unmarshal(files["index.json"], &idx); err != nil {
		return fmt.Errorf("read layout %s: index.json: %w", layoutPath, err)
	}
	if len(idx.Manifests) != 1 {
		return fmt.Errorf("read layout %s: want exactly one manifest, got %d", layoutPath, len(idx.Manifests))
	}
	blob := func(d descriptor) ([]byte, error) {
		b, ok := files[path.Join("blobs", strings.Replace(d.Digest, ":", "/", 1))]
		if !ok {
			return nil, fmt.Errorf("blob %s missing from layout", d.Digest)
		}
		return b, nil
	}
	mdesc := idx.Manifests[0]
	mbytes, err := blob(mdesc)
	if err != nil {
		return err
	}
	var m manifest
	if err := json.Unmarshal(mbytes, &m); err != nil {
		return fmt.Errorf("manifest %s: %w", mdesc.Digest, err)
	}
	// Blobs before the manifest: the registry rejects a manifest whose blobs it lacks.
	for _, d := range append([]descriptor{m.Config}, m.Layers...) {
		b, err := blob(d)
		if err != nil {
			return err
		}
		if err := p.pushBlob(ctx, repo, d.Digest, b); err != nil {
			return err
		}
	}
	u := fmt.Sprintf("%s/v2/%s/manifests/%s", p.base, repo, tag)
	resp, err := p.do(ctx, http.MethodPut, u, mdesc.MediaType, mbytes)
	if err != nil {
		return fmt.Errorf("put manifest %s:%s: %w", repo, tag, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("put manifest %s:%s: %s: %s", repo, tag, resp.Status, body)
	}
	fmt.Printf("pushed %s/%s:%s (%s)\n", strings.TrimPrefix(p.base, "http://"), repo, tag, mdesc.Digest)
	return nil
}

// pushBlob uploads one blob monolithically (POST to open an upload, PUT with the digest),
// skipping blobs the registry already has.
func (p pusher) pushBlob(ctx context.Context, repo, digest string, b []byte) error {
	resp, err := p.do(ctx, http.MethodHead, fmt.Sprintf("%s/v2/%s/blobs/%s", p.base, repo, digest), "", nil)
	if err != nil {
		return fmt.Errorf("check blob %s: %w", digest, err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	resp, err = p.do(ctx, http.MethodPost, fmt.Sprintf("%s/v2/%s/blobs/uploads/", p.base, repo), "", nil)
	if err != nil {
		return fmt.Errorf("start upload of %s: %w", digest, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("start upload of %s: %s", digest, resp.Status)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return fmt.Errorf("start upload of %s: bad Location: %w", digest, err)
	}
	base, _ := url.Parse(p.base)
	loc = base.ResolveReference(loc) // the Location may be relative
	q := loc.Query()
	q.Set("digest", digest)
	loc.RawQuery = q.Encode()
	resp, err = p.do(ctx, http.MethodPut, loc.String(), "application/octet-stream", b)
	if err != nil {
		return fmt.Errorf("upload %s: %w", digest, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("upload %s: %s: %s", digest, resp.Status, body)
	}
	return nil
}

func (p pusher) do(ctx context.Context, method, u, contentType string, body []byte) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return p.client.Do(req)
}

func readTar(name string) (map[string][]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		files[path.Clean(h.Name)] = b
	}
}
