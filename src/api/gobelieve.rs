//! Entry points of the GoBelieve binary protocol (README "GoBelieve binary protocol"): the TCP
//! listener's connections, and the token check binary connections authenticate with after
//! connecting (the same check as the API's bearer tokens: `access_token_<token>`).

use std::sync::Arc;

use actix_web::web;
use bytes::BytesMut;
use tokio::net::TcpStream;

use super::auth::authenticate_token;
use crate::dispatch::{ResolveToken, TokenOwner, Transport};
use crate::state::AppState;

/// The token check for one binary connection.
pub fn resolver(state: web::Data<AppState>) -> ResolveToken {
    Arc::new(move |token: String| {
        let state = state.clone();
        Box::pin(async move {
            let auth = authenticate_token(&state, &token).await.ok()?;
            Some(TokenOwner {
                customer: state.settings.customers.is_customer(auth.user.uid),
                user: auth.user,
                app: auth.app,
            })
        })
    })
}

/// One accepted TCP connection of the binary listener: moved to a connection thread and run
/// there, or dropped (the server is full, or shutting down).
pub fn serve_tcp(state: web::Data<AppState>, io: TcpStream) {
    if state
        .shutting_down
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        return;
    }
    let dispatcher = state.dispatcher.clone();
    dispatcher.adopt(io, move |io| {
        match state
            .dispatcher
            .accept_binary(Transport::Tcp, resolver(state.clone()))
        {
            Ok(conn) => conn.run(io, BytesMut::new()),
            Err(e) => tracing::debug!(error = %e, "binary TCP connection refused"),
        }
    });
}
