//! Why a simulation cannot be built.

/// A configuration the simulator cannot run. Every variant names what to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    /// A value is out of its range or inconsistent with another one.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A scenario names a node, meter, licence or region that the grid does not have, or asks
    /// for something the grid cannot give (no farm in a region, no sibling feeder...).
    #[error("scenario {scenario}: {message}")]
    Scenario {
        /// The scenario's name.
        scenario: String,
        /// What is wrong.
        message: String,
    },
}

impl SimError {
    pub(crate) fn config(message: impl Into<String>) -> SimError {
        SimError::InvalidConfig(message.into())
    }

    pub(crate) fn scenario(scenario: &str, message: impl Into<String>) -> SimError {
        SimError::Scenario {
            scenario: scenario.to_string(),
            message: message.into(),
        }
    }
}
