package main

import (
	"fmt"
	"time"

	"github.com/ledgerlet/ledgerlet/eventlog"
	"github.com/ledgerlet/ledgerlet/eventlog/eventlogtest"
)

func ishex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }

func packed(b []byte) int {
	n := 0
	for i := 0; i < len(b); {
		j := i
		for j < len(b) && ishex(b[j]) {
			j++
		}
		if j-i >= 8 {
			r := (j - i) &^ 1
			n += 2 + r/2 + (j - i - r)
			i = j
			continue
		}
		if j == i {
			j++
		}
		n += j - i
		i = j
	}
	return n
}

func main() {
	m := eventlogtest.NewMix(1)
	var full, nopod, hp, blobs, cnt float64
	types := map[string][2]float64{}
	for i := 0; i < 100000; i++ {
		e := m.Next()
		e.Time = time.Now()
		b, _ := eventlog.Encode(e)
		full += float64(len(b))
		pod := e.Pod
		e.Pod = ""
		b2, _ := eventlog.Encode(e)
		nopod += float64(len(b2)) + 1
		hp += float64(packed(b2)) + 1
		for _, bl := range e.Blobs {
			blobs += float64(len(bl))
		}
		_ = pod
		t := types[e.Type()]
		t[0]++
		t[1] += float64(len(b))
		types[e.Type()] = t
		cnt++
	}
	fmt.Printf("full %.1f nopod %.1f hexpacked %.1f blobs %.1f\n", full/cnt, nopod/cnt, hp/cnt, blobs/cnt)
	for k, v := range types {
		fmt.Printf("%-20s %5.1f%% %6.1f\n", k, v[0]/cnt*100, v[1]/v[0])
	}
}
