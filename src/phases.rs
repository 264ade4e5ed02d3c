//! The report of a parallel restore (`restore --jobs N` on a plain dump): the time of each
//! phase, the work it did, and why it fell back to one connection. A module of its own so
//! that the restoring child's summary (`child::ChildSummary`) can carry it without importing
//! the loader that fills it in.

use serde::Serialize;

/// Time spent in each phase, summed over the databases.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Phases {
    pub connections: u32,
    /// Before the first data item (waiting for the stream included).
    pub schema_seconds: f64,
    /// COPY chunks and other data, until every connection finished its last chunk.
    pub data_seconds: f64,
    pub index_seconds: f64,
    pub fk_seconds: f64,
    pub rest_seconds: f64,
    pub copy_chunks: u64,
    /// COPY rows and their bytes sent over the connections.
    pub data_rows: u64,
    pub data_bytes: u64,
    /// Items that ran as barriers or after the stream fell back to one connection.
    pub serial_items: u64,
    /// Indexes, constraints and foreign keys that were scheduled over the connections.
    pub parallel_items: u64,
    /// Set when the stream fell back to one connection, and why.
    pub fallback: Option<String>,
}
