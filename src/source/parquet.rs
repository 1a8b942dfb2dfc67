//! Parquet inputs (system-table exports), read through `parquet`'s Arrow reader.
//! Being written; see the parquet helper's task.
