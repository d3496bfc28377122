package main

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ledgerlet/ledgerlet/eventlog"
	"github.com/ledgerlet/ledgerlet/eventlog/eventlogtest"
)

func main() {
	f, _ := os.Create("/tmp/zz.prof"); pprof.StartCPUProfile(f); defer pprof.StopCPUProfile()
	for _, G := range []int{1, 64, 64, 128, 256} {
		path := "/tmp/gc/x.db"
		os.Remove(path)
		l, err := eventlog.Open(path, eventlog.Options{})
		if err != nil {
			panic(err)
		}
		mix := eventlogtest.NewMix(1)
		evs := make([]eventlog.Event, 4096)
		for i := range evs {
			evs[i] = mix.Next()
		}
		var wg sync.WaitGroup
		start := time.Now()
		N := 64000 / G
		for g := 0; g < G; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < N; i++ {
					if _, err := l.Append(context.Background(), evs[(g*N+i)%4096]); err != nil {
						panic(err)
					}
				}
			}()
		}
		wg.Wait()
		el := time.Since(start)
		l.Close()
		db, _ := bolt.Open(path, 0600, &bolt.Options{ReadOnly: true})
		db.View(func(tx *bolt.Tx) error {
			n := tx.Bucket([]byte("time")).Stats().KeyN
			fmt.Printf("G=%d events %d commits %d avg batch %.1f, %.0f ev/s, %.2f ms/commit\n", G, G*N, n, float64(G*N)/float64(n), float64(G*N)/el.Seconds(), el.Seconds()*1000/float64(n))
			return nil
		})
		db.Close()
	}
}
