// Package readyline watches a child process's output for the line that says
// it is ready.
package readyline

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// Watch reads r to its end and closes the returned channel at the first
// line that contains needle. It keeps reading after that, so the process
// writing to r never blocks on a full pipe. A line longer than 64 KiB is
// read in pieces (a needle split between two pieces is not seen).
func Watch(r io.Reader, needle string) <-chan struct{} {
	found := make(chan struct{})
	go func() {
		br := bufio.NewReaderSize(r, 64<<10)
		signalled := false
		for {
			line, err := br.ReadSlice('\n')
			if !signalled && bytes.Contains(line, []byte(needle)) {
				close(found)
				signalled = true
			}
			if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
				return
			}
		}
	}()
	return found
}
