//! [`AdminToken`]: the bearer token the admin endpoints ask for, replaceable while serving.

use std::sync::{Arc, PoisonError, RwLock};

/// The admin token, shared by the admin endpoints (which read it on each call) and whoever
/// replaces it (a configuration reload). Clones share one token.
#[derive(Clone, Default)]
pub struct AdminToken {
    // A std lock: held only to clone or swap an `Arc`, never across an await.
    current: Arc<RwLock<Option<Arc<str>>>>,
}

// === impl AdminToken ===

impl AdminToken {
    /// A token holding `token` (`None`: the endpoints are open).
    pub fn new(token: Option<String>) -> Self {
        Self {
            current: Arc::new(RwLock::new(token.map(Arc::from))),
        }
    }

    /// The token callers must present now, if any.
    pub fn current(&self) -> Option<Arc<str>> {
        // Nothing panics while holding the lock; a poisoned one still holds a whole value.
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Makes `token` the one callers must present from the next call on.
    pub fn replace(&self, token: Option<String>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = token.map(Arc::from);
    }
}

impl std::fmt::Debug for AdminToken {
    /// Says whether a token is set, never what it is.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = self.current().is_some();
        f.debug_struct("AdminToken").field("set", &set).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_token_is_seen_through_every_clone() {
        let token = AdminToken::new(Some("old".to_owned()));
        let seen_by_admin = token.clone();
        token.replace(Some("new".to_owned()));
        assert_eq!(seen_by_admin.current().as_deref(), Some("new"));
        token.replace(None);
        assert_eq!(seen_by_admin.current(), None);
        assert_eq!(format!("{token:?}"), "AdminToken { set: false }");
    }
}
