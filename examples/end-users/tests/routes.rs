//! The app's routes over HTTP, with no browser: sign-in, launch, the token it mints, and what
//! that token reaches in Offstage's router. Runs in every `cargo test`.

use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};

mod common;

use common::App;

/// A user of `app`: the cookie its first visit got.
struct User {
    cookie: String,
}

impl User {
    async fn sign_in(app: &App) -> User {
        let page = reqwest::get(format!("{}/", app.url)).await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let set = page.headers()[SET_COOKIE].to_str().unwrap();
        let cookie = set.split(';').next().unwrap().to_owned();
        assert!(cookie.starts_with("user=u-"), "{set}");
        User { cookie }
    }

    fn id(&self) -> &str {
        self.cookie.strip_prefix("user=").unwrap()
    }

    async fn launch(&self, app: &App, pages: u32) -> String {
        let answer = reqwest::Client::new()
            .post(format!("{}/reports", app.url))
            .header(COOKIE, &self.cookie)
            .json(&json!({ "pages": pages }))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::CREATED);
        let body: Value = answer.json().await.unwrap();
        body["task"].as_str().unwrap().to_owned()
    }

    async fn token(&self, app: &App) -> String {
        let answer = reqwest::Client::new()
            .get(format!("{}/token", app.url))
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        let minted: Value = answer.json().await.unwrap();
        assert!(minted["expires_at"].is_string(), "{minted}");
        minted["token"].as_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn an_unsigned_in_request_is_refused_with_how_to_sign_in() {
    let app = App::start();
    for route in ["/token", "/reports"] {
        let request = if route == "/token" {
            reqwest::Client::new().get(format!("{}{route}", app.url))
        } else {
            reqwest::Client::new()
                .post(format!("{}{route}", app.url))
                .json(&json!({ "pages": 1 }))
        };
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{route}");
        let body: Value = answer.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("open the app's page"), "{message}");
    }
}

#[tokio::test]
async fn a_users_token_reaches_their_own_reports_and_no_one_elses() {
    let app = App::start();
    let (a, b) = (User::sign_in(&app).await, User::sign_in(&app).await);
    assert_ne!(a.id(), b.id());
    let report = a.launch(&app, 600).await;
    let (token_a, token_b) = (a.token(&app).await, b.token(&app).await);

    // A reads it, as its owner; B and a caller with no token do not.
    let http = reqwest::Client::new();
    let task: Value = http
        .get(format!("{}/offstage/api/tasks/{report}", app.url))
        .bearer_auth(&token_a)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(task["owner"], a.id());
    assert_eq!(task["name"], "report.build");
    assert_eq!(app.status_of_get(&report, Some(&token_b)).await, 404);
    assert_eq!(app.status_of_get(&report, None).await, 401);

    // The token may stop its owner's report, and nothing more: not B's kill, not a launch.
    let kill = |token: &str| {
        http.post(format!("{}/offstage/api/tasks/{report}/kill", app.url))
            .bearer_auth(token.to_owned())
            .send()
    };
    assert_eq!(
        kill(&token_b).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let launch = http
        .post(format!("{}/offstage/api/tasks", app.url))
        .bearer_auth(&token_a)
        .json(&json!({ "name": "report.build", "args": { "pages": 1 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(launch.status(), StatusCode::FORBIDDEN);
    assert_eq!(kill(&token_a).await.unwrap().status(), StatusCode::ACCEPTED);
}
