package counting

import (
	"bytes"
	"fmt"
	"os"
)

// Counts is the number of executions per call_id found in an execution log.
type Counts map[string]int

// Total is the number of executions of all calls.
func (c Counts) Total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// Repeated returns the call_ids executed more than once, with their counts.
func (c Counts) Repeated() map[string]int {
	out := map[string]int{}
	for k, v := range c {
		if v > 1 {
			out[k] = v
		}
	}
	return out
}

// ReadCounts reads the execution log at path. A log that does not exist yet
// has no executions. A line that is empty or lacks its newline fails: every
// append writes a whole line at once, so a torn line means the log cannot
// be trusted for exact counts.
func ReadCounts(path string) (Counts, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return Counts{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("counting: reading execution log: %w", err)
	}
	return parseCounts(data)
}

func parseCounts(data []byte) (Counts, error) {
	counts := Counts{}
	for line := 1; len(data) > 0; line++ {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return nil, fmt.Errorf("counting: execution log line %d has no newline (torn write?): %q", line, data)
		}
		if i == 0 {
			return nil, fmt.Errorf("counting: execution log line %d is empty", line)
		}
		counts[string(data[:i])]++
		data = data[i+1:]
	}
	return counts, nil
}
