//! `tokengate`: tokengate with no application inside, on the same public face
//! an application uses ([`tokengate::TokenGate`]).

fn main() -> std::process::ExitCode {
    tokengate::TokenGate::new().main()
}
