package activities

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/chamelaion-lipsync/worker/batchfile"
)

// MaxReferenceIDLength bounds a reference_id.
const MaxReferenceIDLength = 200

// ValidateReferenceID accepts "" (derived later) or up to 200 printable,
// non-space characters.
func ValidateReferenceID(ref string) error {
	if len(ref) > MaxReferenceIDLength {
		return fmt.Errorf("reference_id is %d bytes long; at most %d are allowed", len(ref), MaxReferenceIDLength)
	}
	for i, r := range ref {
		if r == unicode.ReplacementChar || !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return fmt.Errorf("reference_id has a space, control or invalid character at byte %d", i)
		}
	}
	if strings.TrimSpace(ref) != ref {
		return fmt.Errorf("reference_id has leading or trailing space")
	}
	return nil
}

// ValidateBatchRow is the check of one row of a batch file beyond the
// file's own rules: the starter applies it before anything starts and the
// worker applies it again to every page it reads, so both skip the same
// rows.
func ValidateBatchRow(j batchfile.Job) error {
	if err := ValidateMedia(j.VideoURL, j.AudioURL); err != nil {
		return err
	}
	return ValidateReferenceID(j.ReferenceID)
}
