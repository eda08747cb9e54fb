// Package batchfile reads the job files of batch submissions: CSV with a
// header row, or JSON Lines, with the columns reference_id, video_url,
// audio_url and disable_active_speaker_detection. It checks every row
// before anything starts and reports each defect with its line number; it
// never repeats a media URL (which may carry credentials) in a message.
package batchfile

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Column names, in the order of the example file.
const (
	ColumnReferenceID      = "reference_id"
	ColumnVideoURL         = "video_url"
	ColumnAudioURL         = "audio_url"
	ColumnDisableDetection = "disable_active_speaker_detection"
)

// maxDefectsBeforeGivingUp bounds the defects reported for one file.
const maxDefectsBeforeGivingUp = 1000

// requiredColumns must be in every file.
var requiredColumns = []string{ColumnReferenceID, ColumnVideoURL, ColumnAudioURL}

// Format is a file format.
type Format string

// The formats.
const (
	CSV   Format = "csv"
	JSONL Format = "jsonl"
)

// FormatOf picks the format from a file name's extension (.csv, .jsonl or
// .ndjson).
func FormatOf(name string) (Format, error) {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".csv":
		return CSV, nil
	case ".jsonl", ".ndjson":
		return JSONL, nil
	}
	return "", fmt.Errorf("%s: unknown file type %q: want .csv or .jsonl", name, filepath.Ext(name))
}

// Job is one valid row.
type Job struct {
	// Line is the row's line number in the file (1-based).
	Line                          int
	ReferenceID                   string
	VideoURL                      string
	AudioURL                      string
	DisableActiveSpeakerDetection bool
}

// Defect is one invalid row (or a defect of the whole file, Line 0 or 1).
type Defect struct {
	Line    int
	Problem string
}

// String renders the defect as "line N: problem".
func (d Defect) String() string {
	if d.Line == 0 {
		return d.Problem
	}
	return fmt.Sprintf("line %d: %s", d.Line, d.Problem)
}

// Result is a parsed file: its valid jobs and every defect found.
type Result struct {
	Jobs    []Job
	Defects []Defect
}

// Error lists the defects of a file, one per line.
type Error struct {
	Name    string
	Defects []Defect
}

// Error lists the file's defects, one per line.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d invalid row(s)", e.Name, len(e.Defects))
	for _, d := range e.Defects {
		b.WriteString("\n  ")
		b.WriteString(d.String())
	}
	return b.String()
}

// Validator checks one job beyond the file's own rules (for example the
// workflow's input validation); its message must not repeat a URL.
type Validator func(Job) error

// Parse reads a whole file. It returns the valid jobs and the defects; a
// defect of the whole file (unreadable, missing column) leaves no jobs.
// validate may be nil.
func Parse(r io.Reader, format Format, validate Validator) (Result, error) {
	var res Result
	var err error
	switch format {
	case CSV:
		res, err = parseCSV(r)
	case JSONL:
		res, err = parseJSONL(r)
	default:
		return Result{}, fmt.Errorf("unknown format %q: want csv or jsonl", format)
	}
	if err != nil {
		return Result{}, err
	}
	res.Jobs = check(res.Jobs, &res.Defects, validate)
	slices.SortStableFunc(res.Defects, func(a, b Defect) int { return a.Line - b.Line })
	if len(res.Jobs) == 0 && len(res.Defects) == 0 {
		res.Defects = append(res.Defects, Defect{Problem: "the file holds no jobs"})
	}
	return res, nil
}

// check applies the per-row rules and drops the rows that break them.
func check(jobs []Job, defects *[]Defect, validate Validator) []Job {
	firstLine := map[string]int{}
	valid := jobs[:0]
	for _, j := range jobs {
		var problems []string
		if j.ReferenceID == "" {
			problems = append(problems, "reference_id is empty")
		} else if first, dup := firstLine[j.ReferenceID]; dup {
			problems = append(problems, fmt.Sprintf("duplicate reference_id %q (first on line %d)", j.ReferenceID, first))
		} else {
			firstLine[j.ReferenceID] = j.Line
		}
		for _, u := range []struct{ name, value string }{{ColumnVideoURL, j.VideoURL}, {ColumnAudioURL, j.AudioURL}} {
			if p := urlProblem(u.value); p != "" {
				problems = append(problems, u.name+" "+p)
			}
		}
		if len(problems) == 0 && validate != nil {
			if err := validate(j); err != nil {
				problems = append(problems, err.Error())
			}
		}
		if len(problems) > 0 {
			*defects = append(*defects, Defect{Line: j.Line, Problem: strings.Join(problems, "; ")})
			continue
		}
		valid = append(valid, j)
	}
	return valid
}

// urlProblem says what is wrong with a media URL without repeating it.
func urlProblem(s string) string {
	switch {
	case s == "":
		return "is empty"
	case strings.TrimSpace(s) != s:
		return "has leading or trailing space"
	case strings.HasPrefix(s, "https://"), strings.HasPrefix(s, "http://"), strings.HasPrefix(s, "file:///"):
		return ""
	}
	return "is not an http(s) URL or a file:/// reference"
}

func parseCSV(r io.Reader) (Result, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = false
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return Result{Defects: []Defect{{Problem: "the file is empty: want a header row"}}}, nil
	}
	if err != nil {
		return Result{Defects: []Defect{{Line: 1, Problem: csvProblem(err)}}}, nil
	}
	index := map[string]int{}
	var res Result
	for i, name := range header {
		name = strings.TrimSpace(strings.TrimPrefix(name, "\ufeff"))
		switch name {
		case ColumnReferenceID, ColumnVideoURL, ColumnAudioURL, ColumnDisableDetection:
			if _, dup := index[name]; dup {
				res.Defects = append(res.Defects, Defect{Line: 1, Problem: fmt.Sprintf("column %q appears twice in the header", name)})
			}
			index[name] = i
		default:
			res.Defects = append(res.Defects, Defect{Line: 1, Problem: fmt.Sprintf("unknown column %q in the header", truncate(name))})
		}
	}
	for _, name := range requiredColumns {
		if _, ok := index[name]; !ok {
			res.Defects = append(res.Defects, Defect{Line: 1, Problem: fmt.Sprintf("the header lacks the column %q", name)})
		}
	}
	if len(res.Defects) > 0 {
		return res, nil
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return Result{}, fmt.Errorf("read: %w", err)
			}
			res.Defects = append(res.Defects, Defect{Line: pe.StartLine, Problem: csvProblem(err)})
			if len(res.Defects) >= maxDefectsBeforeGivingUp || pe.Err == csv.ErrQuote || pe.Err == csv.ErrBareQuote {
				// The reader cannot find the next row after a broken quote.
				break
			}
			continue
		}
		line, _ := cr.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // a blank line
		}
		if len(rec) != len(header) {
			res.Defects = append(res.Defects, Defect{Line: line, Problem: fmt.Sprintf("has %d fields, the header has %d", len(rec), len(header))})
			continue
		}
		j := Job{
			Line:        line,
			ReferenceID: rec[index[ColumnReferenceID]],
			VideoURL:    rec[index[ColumnVideoURL]],
			AudioURL:    rec[index[ColumnAudioURL]],
		}
		if i, ok := index[ColumnDisableDetection]; ok {
			v, err := parseBool(rec[i])
			if err != nil {
				res.Defects = append(res.Defects, Defect{Line: line, Problem: err.Error()})
				continue
			}
			j.DisableActiveSpeakerDetection = v
		}
		res.Jobs = append(res.Jobs, j)
	}
	return res, nil
}

// csvProblem words a CSV syntax error without the reader's position prefix.
func csvProblem(err error) string {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return "malformed CSV: " + pe.Err.Error()
	}
	return "unreadable: " + err.Error()
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "false", "0", "no":
		return false, nil
	case "true", "1", "yes":
		return true, nil
	}
	return false, fmt.Errorf("%s must be true or false, got %q", ColumnDisableDetection, truncate(s))
}

func parseJSONL(r io.Reader) (Result, error) {
	var res Result
	br := bufio.NewReader(r)
	for line := 1; ; line++ {
		raw, err := br.ReadBytes('\n')
		if len(raw) == 0 && errors.Is(err, io.EOF) {
			break
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return Result{}, fmt.Errorf("read line %d: %w", line, err)
		}
		raw = bytes.TrimSpace(raw)
		if len(raw) > 0 {
			if j, problem := jsonJob(raw, line); problem != "" {
				res.Defects = append(res.Defects, Defect{Line: line, Problem: problem})
			} else {
				res.Jobs = append(res.Jobs, j)
			}
		}
		if errors.Is(err, io.EOF) || len(res.Defects) >= maxDefectsBeforeGivingUp {
			break
		}
	}
	return res, nil
}

// jsonJob decodes one JSON Lines row; it checks the type of each field
// itself so that the message names the field (and never echoes a URL).
func jsonJob(raw []byte, line int) (Job, string) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return Job{}, "not a JSON object: " + jsonProblem(err)
	}
	var problems []string
	str := func(name string) string {
		v, ok := fields[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("missing field %q", name))
			return ""
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			problems = append(problems, fmt.Sprintf("field %q must be a string", name))
		}
		return s
	}
	j := Job{Line: line, ReferenceID: str(ColumnReferenceID), VideoURL: str(ColumnVideoURL), AudioURL: str(ColumnAudioURL)}
	if v, ok := fields[ColumnDisableDetection]; ok && string(v) != "null" {
		if err := json.Unmarshal(v, &j.DisableActiveSpeakerDetection); err != nil {
			problems = append(problems, fmt.Sprintf("field %q must be true or false", ColumnDisableDetection))
		}
	}
	var unknown []string
	for name := range fields {
		switch name {
		case ColumnReferenceID, ColumnVideoURL, ColumnAudioURL, ColumnDisableDetection:
		default:
			unknown = append(unknown, strconv.Quote(truncate(name)))
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		problems = append(problems, "unknown field(s) "+strings.Join(unknown, ", "))
	}
	if len(problems) > 0 {
		return Job{}, strings.Join(problems, "; ")
	}
	return j, ""
}

// jsonProblem words a JSON syntax error without quoting the input.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "want an object, got " + te.Value
	}
	return "invalid JSON"
}

func truncate(s string) string {
	const max = 40
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// ParseFile reads the file at name, picking the format from its extension.
func ParseFile(name string, validate Validator) (Result, error) {
	format, err := FormatOf(name)
	if err != nil {
		return Result{}, err
	}
	f, err := os.Open(name)
	if err != nil {
		return Result{}, fmt.Errorf("open batch file: %w", err)
	}
	defer f.Close()
	res, err := Parse(f, format, validate)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", name, err)
	}
	return res, nil
}
