//! The physical world around the loads: climate, meters, losses, street lighting.

use serde::{Deserialize, Serialize};

use super::{check_range, check_share, check_value};
use crate::error::SimError;

/// Temperature and the sun. Defaults: Ust-Kamenogorsk (Öskemen), East Kazakhstan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClimateConfig {
    /// Monthly mean temperature, °C, January to December. Default: Ust-Kamenogorsk's climate
    /// normals rounded to half a degree (January about -15 °C, July about +21 °C).
    pub monthly_mean_c: [f64; 12],
    /// Half the mean daily range (max minus min, halved), °C, January to December: continental
    /// winters under snow have small ranges, summers large ones.
    pub diurnal_half_range_c: [f64; 12],
    /// Standard deviation of a day's departure from normal (cold spells, thaws), °C, January to
    /// December.
    pub day_anomaly_sigma_c: [f64; 12],
    /// Correlation of the departure from one day to the next (weather lasts a few days).
    /// Default 0.75.
    pub day_anomaly_correlation: f64,
    /// Latitude, degrees north (dusk and dawn for street lighting). Default 49.95.
    pub latitude_deg: f64,
    /// Longitude, degrees east. Default 82.61.
    pub longitude_deg: f64,
}

impl Default for ClimateConfig {
    fn default() -> Self {
        ClimateConfig {
            monthly_mean_c: [
                -15.0, -13.5, -5.5, 6.0, 13.5, 19.0, 21.0, 19.0, 12.5, 4.5, -5.0, -12.0,
            ],
            diurnal_half_range_c: [4.0, 4.5, 5.0, 6.0, 6.5, 6.5, 6.5, 6.5, 6.5, 5.5, 4.5, 4.0],
            day_anomaly_sigma_c: [5.5, 5.5, 4.5, 3.5, 3.0, 2.5, 2.5, 2.5, 3.0, 3.5, 4.5, 5.5],
            day_anomaly_correlation: 0.75,
            latitude_deg: 49.95,
            longitude_deg: 82.61,
        }
    }
}

impl ClimateConfig {
    pub(crate) fn validate(&self) -> Result<(), SimError> {
        for month in 0..12 {
            check_value(
                "climate.monthly_mean_c",
                self.monthly_mean_c[month],
                -60.0,
                50.0,
            )?;
            check_value(
                "climate.diurnal_half_range_c",
                self.diurnal_half_range_c[month],
                0.0,
                25.0,
            )?;
            check_value(
                "climate.day_anomaly_sigma_c",
                self.day_anomaly_sigma_c[month],
                0.0,
                25.0,
            )?;
        }
        check_value(
            "climate.day_anomaly_correlation",
            self.day_anomaly_correlation,
            0.0,
            0.999,
        )?;
        check_value("climate.latitude_deg", self.latitude_deg, -66.0, 66.0)?;
        check_value("climate.longitude_deg", self.longitude_deg, -180.0, 180.0)
    }
}

/// Meters: accuracy classes (IEC 62053) and how far real meters stray within them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MeterConfig {
    /// Accuracy of boundary (input) meters, percent. Default 0.5 (class 0.5S).
    pub boundary_accuracy_pct: f64,
    /// Accuracy of household meters, percent. Default 1.
    pub household_accuracy_pct: f64,
    /// Share of household meters that are older, of class 2. Default 0.3.
    pub household_class2_share: f64,
    /// Accuracy of commercial meters, percent. Default 1.
    pub commercial_accuracy_pct: f64,
    /// Accuracy of industrial (CT-operated) meters, percent. Default 0.5.
    pub industrial_accuracy_pct: f64,
    /// Accuracy of mining farms' meters, percent. Default 0.5.
    pub mining_accuracy_pct: f64,
    /// A meter's systematic error is drawn normally with this standard deviation, as a share of
    /// its class, and clipped to the class. Default 0.35 (most meters well inside their class).
    pub systematic_error_sigma_of_class: f64,
    /// Per-reading random error, standard deviation as a share of the class. Default 0.05.
    pub random_error_sigma_of_class: f64,
    /// Clock offset of a meter, seconds (standard deviation): the register at a labelled time
    /// holds a few seconds more or less energy. Default 3.
    pub clock_skew_sigma_s: f64,
    /// Largest clock offset, seconds (clocks are synchronised beyond it). Default 10.
    pub clock_skew_max_s: f64,
    /// Noise on the reported average power, as a share. Default 0.01.
    pub power_noise_share: f64,
    /// Share of household meters whose head-end stamps the time it polled the register, a few
    /// seconds after the boundary (`poll_delay_s`), instead of the boundary. Default 0.
    pub household_poll_stamped_share: f64,
    /// Range of a poll-stamped meter's delay after the boundary, seconds (drawn once per
    /// meter). Default [3, 55].
    pub poll_delay_s: [f64; 2],
    /// Share of household meters that store a 30-minute profile (one reading every second
    /// interval). Default 0.
    pub household_half_hourly_share: f64,
    /// Share of household meters that store a 60-minute profile. Default 0.
    pub household_hourly_share: f64,
}

impl Default for MeterConfig {
    fn default() -> Self {
        MeterConfig {
            boundary_accuracy_pct: 0.5,
            household_accuracy_pct: 1.0,
            household_class2_share: 0.3,
            commercial_accuracy_pct: 1.0,
            industrial_accuracy_pct: 0.5,
            mining_accuracy_pct: 0.5,
            systematic_error_sigma_of_class: 0.35,
            random_error_sigma_of_class: 0.05,
            clock_skew_sigma_s: 3.0,
            clock_skew_max_s: 10.0,
            power_noise_share: 0.01,
            household_poll_stamped_share: 0.0,
            poll_delay_s: [3.0, 55.0],
            household_half_hourly_share: 0.0,
            household_hourly_share: 0.0,
        }
    }
}

impl MeterConfig {
    pub(crate) fn validate(&self) -> Result<(), SimError> {
        for (name, value) in [
            ("meters.boundary_accuracy_pct", self.boundary_accuracy_pct),
            ("meters.household_accuracy_pct", self.household_accuracy_pct),
            (
                "meters.commercial_accuracy_pct",
                self.commercial_accuracy_pct,
            ),
            (
                "meters.industrial_accuracy_pct",
                self.industrial_accuracy_pct,
            ),
            ("meters.mining_accuracy_pct", self.mining_accuracy_pct),
        ] {
            check_value(name, value, 0.01, 10.0)?;
        }
        check_share("meters.household_class2_share", self.household_class2_share)?;
        check_value(
            "meters.systematic_error_sigma_of_class",
            self.systematic_error_sigma_of_class,
            0.0,
            1.0,
        )?;
        check_value(
            "meters.random_error_sigma_of_class",
            self.random_error_sigma_of_class,
            0.0,
            0.3,
        )?;
        check_value(
            "meters.clock_skew_sigma_s",
            self.clock_skew_sigma_s,
            0.0,
            120.0,
        )?;
        check_value("meters.clock_skew_max_s", self.clock_skew_max_s, 0.0, 120.0)?;
        check_value("meters.power_noise_share", self.power_noise_share, 0.0, 0.5)?;
        check_share(
            "meters.household_poll_stamped_share",
            self.household_poll_stamped_share,
        )?;
        check_share(
            "meters.household_half_hourly_share",
            self.household_half_hourly_share,
        )?;
        check_share("meters.household_hourly_share", self.household_hourly_share)?;
        if self.household_half_hourly_share + self.household_hourly_share > 1.0 {
            return Err(SimError::config(format!(
                "meters.household_half_hourly_share + household_hourly_share is {}, must be at most 1",
                self.household_half_hourly_share + self.household_hourly_share
            )));
        }
        let [low, high] = self.poll_delay_s;
        check_value("meters.poll_delay_s[0]", low, 0.0, 600.0)?;
        check_value("meters.poll_delay_s[1]", high, low, 600.0)
    }
}

/// Technical losses of one kind of node: a no-load part (transformer iron, always there) plus a
/// part proportional to the square of the load (I²R in conductors and windings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeLossConfig {
    /// Rating of the node as a multiple of its expected coincident peak load.
    pub rating_headroom: f64,
    /// No-load loss as a share of the rating.
    pub no_load_share_of_rating: f64,
    /// Load loss at rated load, as a share of the rating.
    pub load_loss_share_at_rating: f64,
}

impl Default for NodeLossConfig {
    fn default() -> Self {
        LossConfig::default().feeder
    }
}

impl NodeLossConfig {
    fn validate(&self, name: &str) -> Result<(), SimError> {
        check_value(
            &format!("{name}.rating_headroom"),
            self.rating_headroom,
            1.0,
            100.0,
        )?;
        check_value(
            &format!("{name}.no_load_share_of_rating"),
            self.no_load_share_of_rating,
            0.0,
            0.2,
        )?;
        check_value(
            &format!("{name}.load_loss_share_at_rating"),
            self.load_loss_share_at_rating,
            0.0,
            0.5,
        )
    }
}

/// Technical losses of the grid. With the defaults a typical path loses about 4-6 % of its
/// energy, a plausible figure for a Kazakh distribution network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossConfig {
    /// Substations, metered on their 10 kV side as distribution companies' boundaries usually
    /// are: what lies between that meter and the feeders' is busbars, cells and the station's
    /// own needs (heating, lighting, protection). Default: headroom 2.0, no-load 0.2 %, load
    /// loss 0.1 % at rating.
    pub substation: NodeLossConfig,
    /// Feeders (10 kV lines). Default: headroom 1.6, no-load 0.03 %, load loss 8 % at rating.
    pub feeder: NodeLossConfig,
    /// Distribution transformers and their 0.4 kV lines. Default: headroom 1.4, no-load 0.3 %,
    /// load loss 4 % at rating.
    pub transformer: NodeLossConfig,
    /// Coincident peak of a group of consumers as a multiple of its mean. Default 1.8.
    pub peak_to_mean: f64,
    /// Each node's parameters are the defaults times a factor drawn in `1 +- this`. Default 0.3.
    pub node_spread: f64,
    /// Interval-to-interval noise of losses (power factor, phase imbalance, voltage), standard
    /// deviation of the log factor. Default 0.03.
    pub noise_log_sigma: f64,
    /// Correlation of that noise from one 15-minute interval to the next. Default 0.95.
    pub noise_correlation_15min: f64,
    /// Rise of conductor resistance per kelvin above 20 °C (aluminium and copper, about 0.4 %).
    pub resistance_per_k: f64,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            substation: NodeLossConfig {
                rating_headroom: 2.0,
                no_load_share_of_rating: 0.002,
                load_loss_share_at_rating: 0.001,
            },
            feeder: NodeLossConfig {
                rating_headroom: 1.6,
                no_load_share_of_rating: 0.0003,
                load_loss_share_at_rating: 0.08,
            },
            transformer: NodeLossConfig {
                rating_headroom: 1.4,
                no_load_share_of_rating: 0.003,
                load_loss_share_at_rating: 0.04,
            },
            peak_to_mean: 1.8,
            node_spread: 0.3,
            noise_log_sigma: 0.03,
            noise_correlation_15min: 0.95,
            resistance_per_k: 0.004,
        }
    }
}

impl LossConfig {
    pub(crate) fn validate(&self) -> Result<(), SimError> {
        self.substation.validate("losses.substation")?;
        self.feeder.validate("losses.feeder")?;
        self.transformer.validate("losses.transformer")?;
        check_value("losses.peak_to_mean", self.peak_to_mean, 1.0, 10.0)?;
        check_value("losses.node_spread", self.node_spread, 0.0, 0.9)?;
        check_value("losses.noise_log_sigma", self.noise_log_sigma, 0.0, 1.0)?;
        check_share(
            "losses.noise_correlation_15min",
            self.noise_correlation_15min,
        )?;
        check_value("losses.resistance_per_k", self.resistance_per_k, 0.0, 0.01)
    }
}

/// Street lighting: legitimate, unmetered, switched at dusk and dawn. It belongs in a node's
/// normal residual and follows the calendar (long winter nights, short summer ones).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreetLightingConfig {
    /// Share of the lowest nodes (transformers, or feeders without any) that light streets.
    /// Default 0.5.
    pub node_share: f64,
    /// Lamps on a lit node, `[min, max]`. Default `[10, 60]`.
    pub lamps: [f64; 2],
    /// Power of one lamp with its gear, W, `[min, max]` (LED to sodium). Default `[70, 150]`.
    pub lamp_w: [f64; 2],
    /// Photocells switch a node's lamps on after sunset and off before sunrise by this many
    /// minutes, drawn per node, `[min, max]`. Default `[0, 20]`.
    pub photocell_delay_minutes: [f64; 2],
}

impl Default for StreetLightingConfig {
    fn default() -> Self {
        StreetLightingConfig {
            node_share: 0.5,
            lamps: [10.0, 60.0],
            lamp_w: [70.0, 150.0],
            photocell_delay_minutes: [0.0, 20.0],
        }
    }
}

impl StreetLightingConfig {
    pub(crate) fn validate(&self) -> Result<(), SimError> {
        check_share("street_lighting.node_share", self.node_share)?;
        check_range("street_lighting.lamps", self.lamps, 0.0, 100_000.0)?;
        check_range("street_lighting.lamp_w", self.lamp_w, 0.0, 10_000.0)?;
        check_range(
            "street_lighting.photocell_delay_minutes",
            self.photocell_delay_minutes,
            0.0,
            120.0,
        )
    }
}
