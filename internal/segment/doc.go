// Package segment owns segments: their definitions, their evaluation over
// the workspace indexes, their stored membership, and the background
// builds that compute it.
//
// Evaluation is a small algebra over roaring bitmaps (see eval.go): leaves
// come from the index, and/or/not combine them with complements taken
// relative to every live profile of the workspace; {"segment": id} reads
// the referenced segment's stored membership.
package segment
