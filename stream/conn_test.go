package stream

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/trendstream/trendstream/internal/schematest"
	"github.com/trendstream/trendstream/source"
)

// testCA writes a self-signed CA, a server certificate for 127.0.0.1 and a
// client certificate it signs, and returns the CA file, the server's TLS
// config (client certificates optional) and the client's certificate and
// key files.
func testCA(t testing.TB) (caFile string, server *tls.Config, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "trendstream test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "broker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	cliKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cli := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "trendstream"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	cliDER, err := x509.CreateCertificate(rand.Reader, cli, caCert, &cliKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	cliKeyDER, err := x509.MarshalECPrivateKey(cliKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile, certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600)
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cliDER}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: cliKeyDER}), 0o600)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}}, ClientCAs: pool}
	return caFile, server, certFile, keyFile
}

// TestSecureConnections runs produce, the processor and a follower against
// brokers that require TLS, client certificates and SASL (PLAIN,
// SCRAM-SHA-256 and -512), and checks a wrong password or a missing client
// certificate fails instead of hanging.
func TestSecureConnections(t *testing.T) {
	caFile, serverTLS, certFile, keyFile := testCA(t)
	mutualTLS := serverTLS.Clone()
	mutualTLS.ClientAuth = tls.RequireAndVerifyClientCert
	for _, tc := range []struct {
		name, mechanism string
		tls             bool
		clientCert      bool
	}{
		{"plain over TLS", "PLAIN", true, false},
		{"scram-sha-256", "SCRAM-SHA-256", false, false},
		{"scram-sha-512 over TLS", "SCRAM-SHA-512", true, false},
		{"TLS only", "", true, false},
		{"mutual TLS", "", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := []kfake.Opt{kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(2)}
			if tc.mechanism != "" {
				opts = append(opts, kfake.EnableSASL(), kfake.Superuser(tc.mechanism, "ts", "s3cret"))
			}
			switch {
			case tc.clientCert:
				opts = append(opts, kfake.TLS(mutualTLS))
			case tc.tls:
				opts = append(opts, kfake.TLS(serverTLS))
			}
			c, err := kfake.NewCluster(opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			sec := SecurityConfig{SASLMechanism: tc.mechanism, Username: "ts", Password: "s3cret"}
			if tc.tls {
				sec.CAFile = caFile
			}
			if tc.clientCert {
				sec.CertFile, sec.KeyFile = certFile, keyFile
			}
			tlsCfg, mech, err := sec.Build()
			if err != nil {
				t.Fatal(err)
			}
			conn := Connection{Brokers: c.ListenAddrs(), TLS: tlsCfg, SASL: mech}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()

			gen, _ := source.NewSynthetic(source.SynthConfig{Stores: 1, SKUs: 3, Days: 4})
			if _, err := Produce(ctx, ProduceConfig{Connection: conn, Topic: "sales", Partitions: 2}, gen); err != nil {
				t.Fatalf("producing: %v", err)
			}
			cfg := testConfig(conn.Brokers)
			cfg.Connection = conn
			cfg.Published = "tsb"
			rp := startProcessor(t, cfg, t.TempDir())
			defer rp.stop(t)
			got := make(chan Message, 1)
			fctx, stop := context.WithCancel(ctx)
			defer stop()
			go Follow(fctx, conn, "forecasts", true, func(m Message) {
				select {
				case got <- m:
				default:
				}
			})
			select {
			case m := <-got:
				if err := schematest.Validate(t, "forecast", m.Value); err != nil {
					t.Error(err)
				}
			case <-ctx.Done():
				t.Fatal("no forecast arrived over the secure connection")
			}
		})
	}

	t.Run("no client certificate", func(t *testing.T) {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(mutualTLS))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		tlsCfg, _, err := SecurityConfig{CAFile: caFile}.Build()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		err = EnsureTopics(ctx, Connection{Brokers: c.ListenAddrs(), TLS: tlsCfg}, 1, 1, "sales")
		if err == nil {
			t.Fatal("a broker requiring client certificates accepted a client without one")
		}
		if ctx.Err() != nil {
			t.Fatalf("a missing client certificate hung until the deadline: %v", err)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "ts", "s3cret"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, mech, _ := SecurityConfig{SASLMechanism: "SCRAM-SHA-256", Username: "ts", Password: "wrong"}.Build()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		err = EnsureTopics(ctx, Connection{Brokers: c.ListenAddrs(), SASL: mech}, 1, 1, "sales")
		if err == nil {
			t.Fatal("a wrong password was accepted")
		}
		if ctx.Err() != nil {
			t.Fatalf("a wrong password hung until the deadline: %v", err)
		}
	})
}

func TestSecurityConfigErrors(t *testing.T) {
	for i, sc := range []SecurityConfig{
		{SASLMechanism: "GSSAPI", Username: "u"},
		{SASLMechanism: "PLAIN"},
		{CertFile: "x.pem"},
		{CAFile: "/nonexistent/ca.pem"},
	} {
		if _, _, err := sc.Build(); err == nil {
			t.Errorf("case %d: %+v built", i, sc)
		}
	}
	tc, mech, err := SecurityConfig{}.Build()
	if tc != nil || mech != nil || err != nil {
		t.Errorf("empty settings gave %v %v %v", tc, mech, err)
	}
	if _, _, err := (SecurityConfig{TLS: true}).Build(); err != nil {
		t.Error(fmt.Errorf("TLS with the system pool: %w", err))
	}
}
