// The HTTP-01 solver pods' one binary: cert-manager's solver package behind the flags its
// controller passes (--listen-port, --domain, --token, --key), built from a main of our own
// because the module proxy does not serve the project's nested cmd/acmesolver module. Built by
// e2e/cluster/build-node.sh.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"github.com/cert-manager/cert-manager/pkg/issuer/acme/http/solver"
)

func main() {
	s := &solver.HTTP01Solver{}
	flag.IntVar(&s.ListenPort, "listen-port", 8089, "port to listen on")
	flag.StringVar(&s.Domain, "domain", "", "the domain being validated")
	flag.StringVar(&s.Token, "token", "", "the challenge's token")
	flag.StringVar(&s.Key, "key", "", "the challenge's key")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(shutdown)
	}()
	if err := s.Listen(logf.Log); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(os.Stderr, "acmesolver: %v\n", err)
		os.Exit(1)
	}
}
