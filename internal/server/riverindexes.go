package server

import (
	"slices"

	"github.com/riverqueue/river"
)

// riverDroppedIndexes are River's indexes on river_job that migration 10
// drops: webhookd never queries them, and each non-HOT change of a job row
// (fetched, completed) had to add to them (see the migration).
var riverDroppedIndexes = []string{"river_job_args_index", "river_job_metadata_index", "river_job_kind"}

// RiverReindexIndexes is River's default list of indexes to reindex
// without those migration 10 drops, so that its reindexer does not warn
// every day about indexes that are gone.
func RiverReindexIndexes() []string {
	return slices.DeleteFunc(river.ReindexerIndexNamesDefault(), func(name string) bool {
		return slices.Contains(riverDroppedIndexes, name)
	})
}
