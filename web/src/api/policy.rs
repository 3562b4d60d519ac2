//! `/policy`: access rules (ordered, one stage each) and the test that says which rule an
//! envelope hits. Global only.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use postern_store::model::{PolicyEnvelope, PolicyRule, PolicyRuleText, PolicyStep};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiJson, ApiPath};
use crate::auth::token::ApiUser;
use crate::error::{ErrorBody, WebError};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(remove))
        .routes(routes!(move_rule))
        .routes(routes!(test))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RuleView {
    pub id: i64,
    /// 1 is evaluated first.
    pub position: i64,
    /// `connect`, `helo`, `mail`, `rcpt` or `data`.
    pub stage: String,
    pub client: Option<String>,
    pub rdns: Option<String>,
    pub helo: Option<String>,
    pub sender: Option<String>,
    pub recipient: Option<String>,
    pub authenticated: Option<bool>,
    /// As written: `REJECT 550 5.7.1 text`, `DEFER 450 4.7.1 text`, `OK`, `DISCARD`, `HOLD`,
    /// `REDIRECT address`, `BCC address`.
    pub action: String,
    pub description: String,
    pub created_at: i64,
}

impl From<PolicyRule> for RuleView {
    fn from(r: PolicyRule) -> RuleView {
        let m = r.matches;
        let text = |m: Option<postern_store::model::Matcher>| m.map(|m| m.to_string());
        RuleView {
            id: r.id,
            position: r.position,
            stage: r.stage.to_string(),
            client: m.client.map(|c| c.to_string()),
            rdns: text(m.rdns),
            helo: text(m.helo),
            sender: text(m.sender),
            recipient: text(m.recipient),
            authenticated: m.authenticated,
            action: r.action.to_string(),
            description: r.description,
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RuleList {
    /// In the order they are evaluated.
    pub items: Vec<RuleView>,
}

/// A new rule. Text matchers are an exact name or address, `@domain`, `.suffix` (the name and
/// every name below it) or `/regex/` (case-insensitive); a matcher left out matches anything.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    /// `connect`, `helo`, `mail`, `rcpt` or `data`.
    pub stage: String,
    /// A network in CIDR notation, or one address.
    pub client: Option<String>,
    pub rdns: Option<String>,
    /// From the helo stage on.
    pub helo: Option<String>,
    /// From the mail stage on.
    pub sender: Option<String>,
    /// At the rcpt and data stages.
    pub recipient: Option<String>,
    pub authenticated: Option<bool>,
    /// `REJECT [5xx 5.x.x] [text]`, `DEFER [4xx 4.x.x] [text]`, `OK`, `DISCARD`, `HOLD`,
    /// `REDIRECT address`, `BCC address`.
    pub action: String,
    #[serde(default)]
    pub description: String,
    /// Where to put it (1 is evaluated first); last when absent.
    pub position: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveRule {
    /// The new position (1 is evaluated first; past the end is last).
    pub position: i64,
}

/// An envelope to test against the rules, as a client would send it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyTest {
    /// The client's IP address.
    pub client: String,
    /// Its reverse DNS name (no lookup is made).
    pub rdns: Option<String>,
    pub helo: Option<String>,
    /// MAIL FROM; the null sender when absent.
    pub from: Option<String>,
    /// RCPT TO addresses.
    pub to: Vec<String>,
    /// The user the client authenticated as.
    pub auth: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StepView {
    pub stage: String,
    /// The recipient, at the rcpt stage.
    pub subject: Option<String>,
    /// The rule that decided; absent when none matched (the stage goes on as usual).
    pub rule: Option<i64>,
    pub action: Option<String>,
    /// Why the rule matched.
    pub why: Option<String>,
    /// The step as one line.
    pub summary: String,
}

impl From<PolicyStep> for StepView {
    fn from(s: PolicyStep) -> StepView {
        StepView {
            summary: s.to_string(),
            stage: s.stage.to_string(),
            subject: s.subject,
            rule: s.rule,
            action: s.action,
            why: s.why,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyTestResult {
    /// Each stage the envelope meets, up to the first refusal.
    pub steps: Vec<StepView>,
}

/// Runs `test` against the stored rules.
pub(crate) async fn run_test(
    state: &AppState,
    test: &PolicyTest,
) -> Result<Vec<PolicyStep>, WebError> {
    let client = test.client.trim().parse().map_err(|_| {
        WebError::from(postern_store::StoreError::Invalid {
            field: "client",
            message: format!("{:?} is not an IP address (like 192.0.2.7)", test.client),
        })
    })?;
    let policy = state.store.load_config().await?.policy;
    fn given(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|v| !v.is_empty())
    }
    let env = PolicyEnvelope {
        client: Some(client),
        rdns: given(&test.rdns),
        helo: given(&test.helo),
        sender: Some(given(&test.from).unwrap_or("")),
        recipients: test.to.iter().map(|t| t.trim()).filter(|t| !t.is_empty()).collect(),
        auth: given(&test.auth),
    };
    Ok(policy.trace(&env))
}

/// List the access rules in the order they are evaluated.
#[utoipa::path(get, path = "/policy/rules", tag = "policy",
    responses((status = 200, body = RuleList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Json<RuleList>, WebError> {
    user.require_global()?;
    let rules = state.store.list_policy_rules().await?;
    Ok(Json(RuleList { items: rules.into_iter().map(Into::into).collect() }))
}

/// Add an access rule. A bad pattern, code or matcher is refused with 422 and says why.
#[utoipa::path(post, path = "/policy/rules", request_body = NewRule, tag = "policy",
    responses((status = 201, body = RuleView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(new): ApiJson<NewRule>,
) -> Result<(StatusCode, Json<RuleView>), WebError> {
    user.require_write()?;
    user.require_global()?;
    let text = PolicyRuleText {
        stage: new.stage,
        client: new.client,
        rdns: new.rdns,
        helo: new.helo,
        sender: new.sender,
        recipient: new.recipient,
        authenticated: new.authenticated.map(|a| if a { "yes" } else { "no" }.to_string()),
        action: new.action,
        description: new.description,
    };
    let rule = state.store.add_policy_rule(&user.actor, text.parse()?, new.position).await?;
    Ok((StatusCode::CREATED, Json(rule.into())))
}

/// Remove an access rule.
#[utoipa::path(delete, path = "/policy/rules/{id}", tag = "policy",
    params(("id" = i64, Path, description = "The rule's id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn remove(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, WebError> {
    user.require_write()?;
    user.require_global()?;
    state.store.remove_policy_rule(&user.actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Move an access rule to another position.
#[utoipa::path(post, path = "/policy/rules/{id}/move", request_body = MoveRule, tag = "policy",
    params(("id" = i64, Path, description = "The rule's id")),
    responses((status = 200, body = RuleView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn move_rule(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(to): ApiJson<MoveRule>,
) -> Result<Json<RuleView>, WebError> {
    user.require_write()?;
    user.require_global()?;
    Ok(Json(state.store.move_policy_rule(&user.actor, id, to.position).await?.into()))
}

/// Say which rule an envelope hits at each stage, and why (nothing is sent or stored). Being a
/// POST, it needs a token with write access, like every POST.
#[utoipa::path(post, path = "/policy/test", request_body = PolicyTest, tag = "policy",
    responses((status = 200, body = PolicyTestResult), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn test(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(test): ApiJson<PolicyTest>,
) -> Result<Json<PolicyTestResult>, WebError> {
    user.require_global()?;
    let steps = run_test(&state, &test).await?;
    Ok(Json(PolicyTestResult { steps: steps.into_iter().map(Into::into).collect() }))
}
