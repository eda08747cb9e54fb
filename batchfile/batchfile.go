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

// MaxDefects bounds the invalid rows reported for one file: past it, a
// scan gives up (and a batch is refused, with or without skipping).
const MaxDefects = 1000

const maxDefectsBeforeGivingUp = MaxDefects

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
	// GaveUp is true when the file has so many invalid rows that the rest
	// was not read.
	GaveUp bool
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
// validate may be nil. It gives up after 1,000 defects (Result.GaveUp).
func Parse(r io.Reader, format Format, validate Validator) (Result, error) {
	var res Result
	err := Scan(r, format, validate, func(row Row) error {
		if row.Problem != "" {
			res.Defects = append(res.Defects, Defect{Line: row.Job.Line, Problem: row.Problem})
			return nil
		}
		res.Jobs = append(res.Jobs, row.Job)
		return nil
	}, &res.Defects)
	if err != nil {
		return Result{}, err
	}
	res.GaveUp = len(res.Defects) >= maxDefectsBeforeGivingUp
	if len(res.Jobs) == 0 && len(res.Defects) == 0 {
		res.Defects = append(res.Defects, Defect{Problem: "the file holds no jobs"})
	}
	return res, nil
}

// Row is one row of a file, checked: a valid job (Problem "") or an
// invalid row and why. Job.Line is its line.
type Row struct {
	Job     Job
	Problem string
	// Next is where the row after it starts.
	Next Position
}

// Scan reads a whole file row by row, checking each (its fields, a
// duplicate reference_id, and validate), and calls each with every row, in
// order, without holding the file in memory (only the reference_ids seen,
// to find duplicates). Defects of the whole file (the header) go to
// fileDefects and end the scan. It stops after 1,000 invalid rows, or when
// each returns an error (which it returns).
func Scan(r io.Reader, format Format, validate Validator, each func(Row) error, fileDefects *[]Defect) error {
	sc, defects, err := NewScanner(r, format, Position{})
	if err != nil {
		return err
	}
	if len(defects) > 0 {
		*fileDefects = append(*fileDefects, defects...)
		return nil
	}
	c := NewChecker(validate)
	invalid := 0
	for sc.Scan() {
		row := sc.Row()
		if row.Problem == "" {
			row.Problem = c.Check(row.Job)
		}
		if row.Problem != "" {
			invalid++
		}
		if err := each(row); err != nil {
			return err
		}
		if invalid >= maxDefectsBeforeGivingUp {
			break
		}
	}
	return sc.Err()
}

// Checker applies the rules of one row (its reference_id, its media and
// the validator) and finds duplicate reference_ids among the rows it sees.
type Checker struct {
	validate  Validator
	firstLine map[string]int
}

// NewChecker checks rows with validate (nil = the file's own rules only).
func NewChecker(validate Validator) *Checker {
	return &Checker{validate: validate, firstLine: map[string]int{}}
}

// Check returns what is wrong with a structurally valid row, or "".
func (c *Checker) Check(j Job) string {
	var problems []string
	if j.ReferenceID == "" {
		problems = append(problems, "reference_id is empty")
	} else if first, dup := c.firstLine[j.ReferenceID]; dup {
		problems = append(problems, fmt.Sprintf("duplicate reference_id %q (first on line %d)", truncate(j.ReferenceID), first))
	} else {
		// A copy: the row's own string holds the whole line.
		c.firstLine[strings.Clone(j.ReferenceID)] = j.Line
	}
	for _, u := range []struct{ name, value string }{{ColumnVideoURL, j.VideoURL}, {ColumnAudioURL, j.AudioURL}} {
		if p := urlProblem(u.value); p != "" {
			problems = append(problems, u.name+" "+p)
		}
	}
	if len(problems) == 0 && c.validate != nil {
		if err := c.validate(j); err != nil {
			problems = append(problems, err.Error())
		}
	}
	return strings.Join(problems, "; ")
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

// Position is where a row starts: its byte offset and line number.
type Position struct {
	Offset int64
	Line   int
}

// Scanner reads the rows of a batch file one at a time, from its start or
// from a Position an earlier scan returned (Row.Next), in memory bounded by
// one row. It checks each row's own structure (field count, types) but not
// the rules across rows; see Checker.
type Scanner struct {
	format Format
	// CSV
	cr     *csv.Reader
	header []string
	index  map[string]int
	// JSON Lines
	br *bufio.Reader
	// base is where the reader started; line the last line read.
	base Position
	off  int64
	line int
	row  Row
	done bool
	err  error
}

// utf8BOM may start a file saved by a spreadsheet or an editor.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// NewScanner starts reading at from: the zero Position is the file's
// start (past a UTF-8 byte-order mark); any other is a Row.Next of an
// earlier scan of the same file, which r must be able to seek to (and,
// for CSV, to the header at the start). Defects of the CSV header are
// returned, and then the scanner yields nothing.
func NewScanner(r io.Reader, format Format, from Position) (*Scanner, []Defect, error) {
	if format != CSV && format != JSONL {
		return nil, nil, fmt.Errorf("unknown format %q: want csv or jsonl", format)
	}
	s := &Scanner{format: format}
	if from.Offset == 0 {
		br := bufio.NewReader(r)
		if b, err := br.Peek(len(utf8BOM)); err == nil && bytes.Equal(b, utf8BOM) {
			_, _ = br.Discard(len(utf8BOM))
			from.Offset = int64(len(utf8BOM))
		}
		s.base = Position{Offset: from.Offset, Line: 1}
		if format == JSONL {
			s.br = br
			return s, nil, nil
		}
		s.cr = newCSVReader(br)
		return s, s.readHeader(), nil
	}
	seeker, ok := r.(io.Seeker)
	if !ok {
		return nil, nil, errors.New("batchfile: reading from a position needs a seekable file")
	}
	if format == CSV {
		if _, err := seeker.Seek(0, io.SeekStart); err != nil {
			return nil, nil, fmt.Errorf("read the header: %w", err)
		}
		hs, defects, err := NewScanner(r, format, Position{})
		if err != nil || len(defects) > 0 {
			return nil, defects, err
		}
		s.header, s.index = hs.header, hs.index
	}
	if _, err := seeker.Seek(from.Offset, io.SeekStart); err != nil {
		return nil, nil, fmt.Errorf("seek to byte %d: %w", from.Offset, err)
	}
	s.base = from
	if format == JSONL {
		s.br = bufio.NewReader(r)
	} else {
		s.cr = newCSVReader(r)
	}
	return s, nil, nil
}

func newCSVReader(r io.Reader) *csv.Reader {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	return cr
}

// readHeader reads the CSV header row and maps the columns.
func (s *Scanner) readHeader() []Defect {
	s.done = true
	header, err := s.cr.Read()
	if errors.Is(err, io.EOF) {
		return []Defect{{Problem: "the file is empty: want a header row"}}
	}
	if err != nil {
		return []Defect{{Line: 1, Problem: csvProblem(err)}}
	}
	var defects []Defect
	s.index = map[string]int{}
	for i, name := range header {
		name = strings.TrimSpace(name)
		switch name {
		case ColumnReferenceID, ColumnVideoURL, ColumnAudioURL, ColumnDisableDetection:
			if _, dup := s.index[name]; dup {
				defects = append(defects, Defect{Line: 1, Problem: fmt.Sprintf("column %q appears twice in the header", name)})
			}
			s.index[name] = i
		default:
			defects = append(defects, Defect{Line: 1, Problem: fmt.Sprintf("unknown column %q in the header", truncate(name))})
		}
	}
	for _, name := range requiredColumns {
		if _, ok := s.index[name]; !ok {
			defects = append(defects, Defect{Line: 1, Problem: fmt.Sprintf("the header lacks the column %q", name)})
		}
	}
	if len(defects) > 0 {
		return defects
	}
	s.header, s.done = header, false
	return nil
}

// Scan reads the next row; false at the end of the file or on an error
// (see Err).
func (s *Scanner) Scan() bool {
	if s.done {
		return false
	}
	if s.format == CSV {
		return s.scanCSV()
	}
	return s.scanJSONL()
}

// Row is the row Scan read.
func (s *Scanner) Row() Row { return s.row }

// Err is the error that ended the scan, if any (not a row's defect).
func (s *Scanner) Err() error { return s.err }

func (s *Scanner) next() Position {
	return Position{Offset: s.base.Offset + s.cr.InputOffset(), Line: s.line + 1}
}

func (s *Scanner) scanCSV() bool {
	for {
		rec, err := s.cr.Read()
		if errors.Is(err, io.EOF) {
			s.done = true
			return false
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				s.done, s.err = true, fmt.Errorf("read: %w", err)
				return false
			}
			s.line = s.base.Line - 1 + pe.Line
			s.row = Row{Job: Job{Line: s.base.Line - 1 + pe.StartLine}, Problem: csvProblem(err), Next: s.next()}
			if pe.Err == csv.ErrQuote || pe.Err == csv.ErrBareQuote {
				s.done = true // the reader cannot find the next row after a broken quote
			}
			return true
		}
		first, _ := s.cr.FieldPos(0)
		last, _ := s.cr.FieldPos(len(rec) - 1)
		line := s.base.Line - 1 + first
		// FieldPos is where the last field starts: a quoted last field may
		// go on over more lines.
		s.line = s.base.Line - 1 + last + strings.Count(rec[len(rec)-1], "\n")
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // a blank line
		}
		s.row = Row{Job: Job{Line: line}, Next: s.next()}
		if len(rec) != len(s.header) {
			s.row.Problem = fmt.Sprintf("has %d fields, the header has %d", len(rec), len(s.header))
			return true
		}
		j := Job{
			Line:        line,
			ReferenceID: rec[s.index[ColumnReferenceID]],
			VideoURL:    rec[s.index[ColumnVideoURL]],
			AudioURL:    rec[s.index[ColumnAudioURL]],
		}
		if i, ok := s.index[ColumnDisableDetection]; ok {
			v, err := parseBool(rec[i])
			if err != nil {
				s.row.Problem = err.Error()
				return true
			}
			j.DisableActiveSpeakerDetection = v
		}
		s.row.Job = j
		return true
	}
}

func (s *Scanner) scanJSONL() bool {
	for {
		raw, err := s.br.ReadBytes('\n')
		if len(raw) == 0 && errors.Is(err, io.EOF) {
			s.done = true
			return false
		}
		if err != nil && !errors.Is(err, io.EOF) {
			s.done, s.err = true, fmt.Errorf("read line %d: %w", s.base.Line+s.line, err)
			return false
		}
		line := s.base.Line + s.line
		s.line++
		s.off += int64(len(raw))
		if errors.Is(err, io.EOF) {
			s.done = true
		}
		next := Position{Offset: s.base.Offset + s.off, Line: s.base.Line + s.line}
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 {
			if s.done {
				return false
			}
			continue
		}
		j, problem := jsonJob(raw, line)
		if problem != "" {
			j = Job{Line: line}
		}
		s.row = Row{Job: j, Problem: problem, Next: next}
		return true
	}
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
