// go-kubelet plays kubelet's side of the CRI image service with grpc-go, the gRPC library
// kubelet is built on, over a unix socket. It dials the way kubelet does:
//
//   - "legacy": kubelet before kubernetes/kubernetes#123463 (and crictl of that era): the socket
//     path itself is the gRPC target and a custom dialer opens the unix socket, so grpc-go sends
//     the path as the HTTP/2 :authority.
//   - "localhost": newer kubelets, which add grpc.WithAuthority("localhost").
//
// Each argument after the flags is one call, printed as one JSON line on stdout:
//
//	version | imagefsinfo | list[=FILTER] | status=REF | pull=REF | remove=REF
//
// A failed call prints its gRPC code and message; the exit code is 0 unless dialing failed.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

func main() {
	socket := flag.String("socket", "", "the image service's unix socket")
	dial := flag.String("dial", "legacy", "legacy (socket path as target and :authority) or localhost")
	user := flag.String("username", "", "AuthConfig.username sent with pulls")
	password := flag.String("password", "", "AuthConfig.password sent with pulls")
	namespace := flag.String("namespace", "", "the pod's namespace, in PullImage's sandbox config")
	annotations := flag.String("annotations", "", "ImageSpec annotations for pulls: k=v,k=v")
	handler := flag.String("runtime-handler", "", "ImageSpec.runtime_handler for pulls")
	timeout := flag.Duration("timeout", 2*time.Minute, "deadline of each call")
	flag.Parse()
	if *socket == "" {
		fmt.Fprintln(os.Stderr, "usage: go-kubelet -socket PATH [-dial legacy|localhost] CALL...")
		os.Exit(2)
	}

	// As kubelet's util.GetAddressAndDialer: the address is the bare path, the dialer opens it.
	dialer := func(ctx context.Context, addr string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", addr)
	}
	opts := []grpc.DialOption{grpc.WithInsecure(), grpc.WithContextDialer(dialer), grpc.WithBlock()}
	if *dial == "localhost" {
		opts = append(opts, grpc.WithAuthority("localhost"))
	} else if *dial != "legacy" {
		fmt.Fprintf(os.Stderr, "-dial: legacy or localhost, not %q\n", *dial)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	conn, err := grpc.DialContext(ctx, *socket, opts...)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "dial %s: %v\n", *socket, err)
		os.Exit(1)
	}
	defer conn.Close()

	spec := func(ref string) *ImageSpec { return &ImageSpec{Image: ref} }
	pullSpec := func(ref string) *ImageSpec {
		s := &ImageSpec{Image: ref, RuntimeHandler: *handler}
		if *annotations != "" {
			s.Annotations = map[string]string{}
			for _, kv := range strings.Split(*annotations, ",") {
				k, v, _ := strings.Cut(kv, "=")
				s.Annotations[k] = v
			}
		}
		return s
	}
	out := json.NewEncoder(os.Stdout)
	for _, call := range flag.Args() {
		name, arg, _ := strings.Cut(call, "=")
		line := map[string]interface{}{"call": name, "authority": *dial}
		var res interface{}
		var method string
		var req interface{}
		switch name {
		case "version":
			method, req, res = "/runtime.v1.RuntimeService/Version", &VersionRequest{Version: "v1"}, &VersionResponse{}
		case "imagefsinfo":
			method, req, res = "/runtime.v1.ImageService/ImageFsInfo", &ImageFsInfoRequest{}, &ImageFsInfoResponse{}
		case "list":
			r := &ListImagesRequest{}
			if arg != "" {
				r.Filter = &ImageFilter{Image: spec(arg)}
			}
			method, req, res = "/runtime.v1.ImageService/ListImages", r, &ListImagesResponse{}
		case "status":
			method, req, res = "/runtime.v1.ImageService/ImageStatus", &ImageStatusRequest{Image: spec(arg)}, &ImageStatusResponse{}
		case "pull":
			r := &PullImageRequest{Image: pullSpec(arg)}
			if *user != "" || *password != "" {
				r.Auth = &AuthConfig{Username: *user, Password: *password}
			}
			if *namespace != "" {
				r.SandboxConfig = &PodSandboxConfig{Metadata: &PodSandboxMetadata{Name: "pod", Uid: "uid-1", Namespace: *namespace}}
			}
			method, req, res = "/runtime.v1.ImageService/PullImage", r, &PullImageResponse{}
		case "remove":
			method, req, res = "/runtime.v1.ImageService/RemoveImage", &RemoveImageRequest{Image: spec(arg)}, &RemoveImageResponse{}
		default:
			fmt.Fprintf(os.Stderr, "unknown call %q\n", call)
			os.Exit(2)
		}
		cctx, ccancel := context.WithTimeout(context.Background(), *timeout)
		err := conn.Invoke(cctx, method, req, res)
		ccancel()
		if err != nil {
			s := status.Convert(err)
			line["code"], line["message"] = int(s.Code()), s.Message()
		} else {
			line["code"], line["response"] = 0, res
		}
		if err := out.Encode(line); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
