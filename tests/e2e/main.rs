//! End-to-end tests: real sources made with the ffmpeg CLI, the real worker binary, and
//! output checked independently with ffprobe.

mod access;
mod amqp_submit;
mod api_contract;
mod chart;
mod encrypted_job;
mod encryption;
mod fmp4;
mod forensic;
mod coordinator;
mod hostile;
mod inputs;
mod low_bandwidth;
mod per_title;
mod observability;
mod queue;
mod ranges;
mod repeatable;
mod review;
mod review_api;
mod review_marks;
mod review_page;
mod shares;
mod storage;
mod swift;
mod trust;
