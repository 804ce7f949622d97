//! How a stored value may serve one request: the loader's judgement, which the read-through
//! cache acts on and each caller's outcome reports.

/// How a stored value may serve one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    /// Serve it as it is.
    Fresh,
    /// Serve it now and refresh it in the background (e.g. `stale-while-revalidate`).
    ServeAndRefresh,
    /// Load first. The stored value is handed to the load (to revalidate it, or to build on it)
    /// and may stand in if the load fails.
    Load(LoadCause),
}

/// Why a stored value cannot serve a request without a load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadCause {
    /// It was stored for other requests (e.g. another `Vary` selection).
    Unmatched,
    /// It is stale and must be revalidated or replaced.
    Stale,
    /// It would do, but the request itself asks for a load (e.g. `no-cache`).
    Requested,
}
