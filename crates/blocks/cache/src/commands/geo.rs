//! Geospatial commands (GEOADD, GEOPOS, GEODIST, GEOHASH, GEOSEARCH, GEOSEARCHSTORE,
//! GEORADIUS, GEORADIUSBYMEMBER and their `_RO` forms) over sorted sets, as Redis keeps
//! them: a member's score is its 52-bit geohash, longitude and latitude bits interleaved, so
//! nearby places have nearby scores and GEO keys are ordinary sorted sets to every other
//! command.
//!
//! A search picks the geohash precision whose cells are at least as large as the search
//! area, reads the members of the 3x3 cells around its centre as score ranges of the sorted
//! set (O(log n) each), and keeps those within the radius or box by exact distance, as
//! Redis does. Distances use Redis's haversine and Earth radius, and numbers are formatted
//! as Redis formats them, so answers match redis-server's to the digit.

use super::{CmdResult, Ctx, eq, float, int};
use crate::reply::{Reply, errors};
use crate::zset::ZSet;
use bytes::Bytes;

const LON_MIN: f64 = -180.0;
const LON_MAX: f64 = 180.0;
/// The latitudes Web Mercator (and so Redis) can index.
const LAT_MIN: f64 = -85.05112878;
const LAT_MAX: f64 = 85.05112878;
/// Bits of longitude and of latitude in a score.
const STEPS: u32 = 26;
const EARTH_RADIUS_M: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;

/// Interleaves: bit `2i` of the result is bit `i` of `lat`, bit `2i + 1` bit `i` of `lon`.
fn interleave(lat: u32, lon: u32) -> u64 {
    let spread = |v: u32| {
        let mut x = v as u64;
        x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
        x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
        x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
        x = (x | (x << 2)) & 0x3333_3333_3333_3333;
        (x | (x << 1)) & 0x5555_5555_5555_5555
    };
    spread(lat) | (spread(lon) << 1)
}

/// The inverse of [`interleave`]: (lat, lon).
fn deinterleave(bits: u64) -> (u32, u32) {
    let squash = |v: u64| {
        let mut x = v & 0x5555_5555_5555_5555;
        x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
        x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
        x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
        x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
        ((x | (x >> 16)) & 0x0000_0000_FFFF_FFFF) as u32
    };
    (squash(bits), squash(bits >> 1))
}

/// The geohash of a point with `step` bits per coordinate, over the given latitude range.
fn encode(lon: f64, lat: f64, step: u32, lat_range: (f64, f64)) -> u64 {
    let cells = (1u64 << step) as f64;
    let lat_cell = ((lat - lat_range.0) / (lat_range.1 - lat_range.0) * cells) as u32;
    let lon_cell = ((lon - LON_MIN) / (LON_MAX - LON_MIN) * cells) as u32;
    let max = (1u32 << step) - 1;
    interleave(lat_cell.min(max), lon_cell.min(max))
}

/// The centre of the cell of a 52-bit score: (lon, lat).
fn decode(score: f64) -> (f64, f64) {
    let (lat_cell, lon_cell) = deinterleave(score as u64);
    let cells = (1u64 << STEPS) as f64;
    // The mean of the cell's edges, computed as Redis computes them, to the last bit.
    let edge = |cell: u32, min: f64, max: f64| min + (cell as f64 / cells) * (max - min);
    let lat = (edge(lat_cell, LAT_MIN, LAT_MAX) + edge(lat_cell + 1, LAT_MIN, LAT_MAX)) / 2.0;
    let lon = (edge(lon_cell, LON_MIN, LON_MAX) + edge(lon_cell + 1, LON_MIN, LON_MAX)) / 2.0;
    (lon.clamp(LON_MIN, LON_MAX), lat.clamp(LAT_MIN, LAT_MAX))
}

fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let (lat1, lon1, lat2, lon2) =
        (lat1.to_radians(), lon1.to_radians(), lat2.to_radians(), lon2.to_radians());
    let u = ((lat2 - lat1) / 2.0).sin();
    let v = ((lon2 - lon1) / 2.0).sin();
    2.0 * EARTH_RADIUS_M * (u * u + lat1.cos() * lat2.cos() * v * v).sqrt().asin()
}

/// A coordinate as Redis prints it (`%.17Lf`, trailing zeros cut).
fn human(v: f64) -> Reply {
    let text = format!("{v:.17}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    Reply::Bulk(Bytes::copy_from_slice(text.as_bytes()))
}

/// A distance as Redis prints it (`%.4f`).
fn dist_reply(meters: f64, unit: f64) -> Reply {
    Reply::Bulk(Bytes::from(format!("{:.4}", meters / unit)))
}

fn coords(lon: f64, lat: f64) -> Reply {
    Reply::Array(vec![human(lon), human(lat)])
}

/// Meters per unit.
fn unit(arg: &[u8]) -> Result<f64, Reply> {
    match () {
        _ if eq(arg, "m") => Ok(1.0),
        _ if eq(arg, "km") => Ok(1000.0),
        _ if eq(arg, "ft") => Ok(0.3048),
        _ if eq(arg, "mi") => Ok(1609.34),
        _ => Err(Reply::err("ERR unsupported unit provided. please use M, KM, FT, MI")),
    }
}

/// A longitude and latitude Redis can index.
fn point(lon: &[u8], lat: &[u8]) -> Result<(f64, f64), Reply> {
    let (lon, lat) = (float(lon)?, float(lat)?);
    if !(LON_MIN..=LON_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return Err(Reply::err(format!("ERR invalid longitude,latitude pair {lon:.6},{lat:.6}")));
    }
    Ok((lon, lat))
}

/// GEOADD key [NX|XX] [CH] longitude latitude member [...]: ZADD with each member's
/// geohash as its score (so the flags mean what they mean there).
pub fn geoadd(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let flags = args[2..].iter().take_while(|a| eq(a, "nx") || eq(a, "xx") || eq(a, "ch")).count();
    let triples = &args[2 + flags..];
    let has = |word: &str| args[2..2 + flags].iter().any(|f| eq(f, word));
    // NX with XX is a syntax error here (ZADD words it otherwise), as in Redis.
    if triples.is_empty() || !triples.len().is_multiple_of(3) || (has("nx") && has("xx")) {
        return Err(Reply::err(errors::SYNTAX));
    }
    // Every pair is checked before anything changes; ZADD then parses exact integers back.
    let mut zadd_args = args[..2 + flags].to_vec();
    for t in triples.chunks(3) {
        let (lon, lat) = point(&t[0], &t[1])?;
        zadd_args.push(Bytes::from(encode(lon, lat, STEPS, (LAT_MIN, LAT_MAX)).to_string()));
        zadd_args.push(t[2].clone());
    }
    super::zsets::zadd(ctx, &zadd_args)
}

/// Per member named in `args[2..]`: `found` of its score, or `missing`.
fn per_member(ctx: &mut Ctx, args: &[Bytes], found: impl Fn(f64) -> Reply, missing: Reply) -> CmdResult {
    let zset = ctx.read_zset(&args[1])?;
    Ok(Reply::Array(
        args[2..]
            .iter()
            .map(|m| zset.as_ref().and_then(|z| z.score(m)).map_or_else(|| missing.clone(), &found))
            .collect(),
    ))
}

/// GEOPOS key member [member ...]
pub fn geopos(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    per_member(
        ctx,
        args,
        |score| {
            let (lon, lat) = decode(score);
            coords(lon, lat)
        },
        Reply::NilArray,
    )
}

/// GEODIST key member1 member2 [M|KM|FT|MI]
pub fn geodist(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let per = match args.len() {
        4 => 1.0,
        5 => unit(&args[4])?,
        _ => return Err(Reply::err(errors::SYNTAX)),
    };
    let Some(z) = ctx.read_zset(&args[1])? else { return Ok(Reply::Nil) };
    let (Some(a), Some(b)) = (z.score(&args[2]), z.score(&args[3])) else { return Ok(Reply::Nil) };
    let ((lon1, lat1), (lon2, lat2)) = (decode(a), decode(b));
    Ok(dist_reply(distance(lon1, lat1, lon2, lat2), per))
}

/// GEOHASH key member [member ...]: standard 11-character geohashes (over latitudes
/// -90..90, as other geohash tools use).
pub fn geohash(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    per_member(
        ctx,
        args,
        |score| {
            let (lon, lat) = decode(score);
            let bits = encode(lon, lat, STEPS, (-90.0, 90.0));
            // 52 bits make ten characters; the eleventh is 0, as in Redis.
            let text: Vec<u8> = (0..11)
                .map(
                    |i| if i == 10 { b'0' } else { ALPHABET[((bits >> (52 - (i + 1) * 5)) & 0x1f) as usize] },
                )
                .collect();
            Reply::Bulk(Bytes::from(text))
        },
        Reply::Nil,
    )
}

/// The area a search covers, in meters.
#[derive(Clone, Copy)]
enum Shape {
    Radius(f64),
    Box { width: f64, height: f64 },
}

/// A parsed search: GEOSEARCH's and GEORADIUS's options alike.
struct Search {
    center: Center,
    shape: Option<Shape>,
    /// Meters per unit of the shape, and of answered distances.
    unit: f64,
    desc: Option<bool>,
    count: Option<(usize, bool)>,
    with_coord: bool,
    with_dist: bool,
    with_hash: bool,
    /// Where GEORADIUS's STORE / STOREDIST put the result (and whether as distances).
    store: Option<(Bytes, bool)>,
}

enum Center {
    Member(Bytes),
    Point(f64, f64),
}

/// One match: member, distance (m), score, coordinates.
type Found = (Bytes, f64, f64, (f64, f64));

impl Search {
    fn new(center: Option<Center>) -> Search {
        Search {
            center: center.unwrap_or(Center::Point(0.0, 0.0)),
            shape: None,
            unit: 1.0,
            desc: None,
            count: None,
            with_coord: false,
            with_dist: false,
            with_hash: false,
            store: None,
        }
    }

    /// Reads the options shared by every search form from `args`; `geosearch` for the
    /// FROM*/BY* forms, `store_ok` where STORE/STOREDIST may appear.
    fn options(&mut self, args: &[Bytes], geosearch: bool, store_ok: bool) -> Result<(), Reply> {
        let mut from = 0;
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            let left = args.len() - i - 1;
            match () {
                _ if eq(a, "withcoord") => self.with_coord = true,
                _ if eq(a, "withdist") => self.with_dist = true,
                _ if eq(a, "withhash") => self.with_hash = true,
                _ if eq(a, "asc") => self.desc = Some(false),
                _ if eq(a, "desc") => self.desc = Some(true),
                _ if eq(a, "any") => match &mut self.count {
                    Some((_, any)) => *any = true,
                    None => return Err(Reply::err("ERR the ANY argument requires COUNT argument")),
                },
                _ if eq(a, "count") && left >= 1 => {
                    let n = int(&args[i + 1])?;
                    if n <= 0 {
                        return Err(Reply::err("ERR COUNT must be > 0"));
                    }
                    let any = args.get(i + 2).is_some_and(|w| eq(w, "any"));
                    self.count = Some((n as usize, any));
                    i += 1 + usize::from(any);
                }
                _ if store_ok && (eq(a, "store") || eq(a, "storedist")) && left >= 1 => {
                    self.store = Some((args[i + 1].clone(), eq(a, "storedist")));
                    i += 1;
                }
                _ if geosearch && from == 0 && eq(a, "frommember") && left >= 1 => {
                    self.center = Center::Member(args[i + 1].clone());
                    from += 1;
                    i += 1;
                }
                _ if geosearch && from == 0 && eq(a, "fromlonlat") && left >= 2 => {
                    let (lon, lat) = point(&args[i + 1], &args[i + 2])?;
                    self.center = Center::Point(lon, lat);
                    from += 1;
                    i += 2;
                }
                _ if geosearch && self.shape.is_none() && eq(a, "byradius") && left >= 2 => {
                    let r = radius(&args[i + 1])?;
                    self.unit = unit(&args[i + 2])?;
                    self.shape = Some(Shape::Radius(r * self.unit));
                    i += 2;
                }
                _ if geosearch && self.shape.is_none() && eq(a, "bybox") && left >= 3 => {
                    let (w, h) = (radius(&args[i + 1])?, radius(&args[i + 2])?);
                    self.unit = unit(&args[i + 3])?;
                    self.shape = Some(Shape::Box { width: w * self.unit, height: h * self.unit });
                    i += 3;
                }
                _ => return Err(Reply::err(errors::SYNTAX)),
            }
            i += 1;
        }
        if geosearch {
            if from == 0 {
                return Err(Reply::err(
                    "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for GEOSEARCH",
                ));
            }
            if self.shape.is_none() {
                return Err(Reply::err(
                    "ERR exactly one of BYRADIUS and BYBOX can be specified for GEOSEARCH",
                ));
            }
        }
        if self.store.is_some() && (self.with_coord || self.with_dist || self.with_hash) {
            return Err(Reply::err(
                "ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD options",
            ));
        }
        Ok(())
    }

    /// The members of `z` within the search, ordered as asked.
    fn run(&self, z: &ZSet) -> Result<Vec<Found>, Reply> {
        let (lon, lat) = match &self.center {
            Center::Point(lon, lat) => (*lon, *lat),
            Center::Member(m) => match z.score(m) {
                Some(score) => decode(score),
                None => return Err(Reply::err("ERR could not decode requested zset member")),
            },
        };
        let shape = self.shape.expect("parsed with a shape");
        let reach = match shape {
            Shape::Radius(r) => r,
            Shape::Box { width, height } => (width / 2.0).hypot(height / 2.0),
        };
        let limit = self.count.filter(|(_, any)| *any).map(|(n, _)| n);
        let mut found = Vec::new();
        'cells: for (lo, hi) in cells_around(lon, lat, reach) {
            let from = z.count_below(|s, _| s < lo);
            let to = z.count_below(|s, _| s < hi);
            for (member, score) in z.range(from, to) {
                let (plon, plat) = decode(score);
                let inside = match shape {
                    Shape::Radius(r) => Some(distance(lon, lat, plon, plat)).filter(|d| *d <= r),
                    Shape::Box { width, height } => {
                        let lat_dist = EARTH_RADIUS_M * (plat.to_radians() - lat.to_radians()).abs();
                        (lat_dist <= height / 2.0 && distance(lon, plat, plon, plat) <= width / 2.0)
                            .then(|| distance(lon, lat, plon, plat))
                    }
                };
                if let Some(d) = inside {
                    found.push((member, d, score, (plon, plat)));
                    if limit.is_some_and(|n| found.len() >= n) {
                        break 'cells;
                    }
                }
            }
        }
        // COUNT without an order means nearest first, as in Redis.
        let desc = self.desc.or(self.count.filter(|(_, any)| !any).map(|_| false));
        match desc {
            Some(false) => found.sort_by(|a, b| a.1.total_cmp(&b.1)),
            Some(true) => found.sort_by(|a, b| b.1.total_cmp(&a.1)),
            None => {}
        }
        if let Some((n, _)) = self.count {
            found.truncate(n);
        }
        Ok(found)
    }

    fn reply(&self, found: Vec<Found>) -> Reply {
        let plain = !(self.with_coord || self.with_dist || self.with_hash);
        Reply::Array(
            found
                .into_iter()
                .map(|(member, d, score, (lon, lat))| {
                    if plain {
                        return Reply::Bulk(member);
                    }
                    let mut item = vec![Reply::Bulk(member)];
                    if self.with_dist {
                        item.push(dist_reply(d, self.unit));
                    }
                    if self.with_hash {
                        item.push(Reply::Int(score as i64));
                    }
                    if self.with_coord {
                        item.push(coords(lon, lat));
                    }
                    Reply::Array(item)
                })
                .collect(),
        )
    }
}

/// A radius, width or height: a non-negative number.
fn radius(arg: &[u8]) -> Result<f64, Reply> {
    let r = float(arg).map_err(|_| Reply::err("ERR need numeric radius"))?;
    if r < 0.0 {
        return Err(Reply::err("ERR radius cannot be negative"));
    }
    Ok(r)
}

/// The score ranges `[lo, hi)` of the 3x3 geohash cells around a point, at the precision
/// whose cells are at least `reach` meters across (Redis's estimate, one step coarser for a
/// margin), deduplicated.
fn cells_around(lon: f64, lat: f64, reach: f64) -> Vec<(f64, f64)> {
    let mut step: i32 = 26;
    if reach > 0.0 {
        let mut range = reach;
        step = 1;
        while range < MERCATOR_MAX {
            range *= 2.0;
            step += 1;
        }
        step -= 3;
        if lat.abs() > 66.0 {
            step -= 1;
            if lat.abs() > 80.0 {
                step -= 1;
            }
        }
    }
    let step = step.clamp(1, 26) as u32;
    let cells = 1i64 << step;
    let shift = 2 * (STEPS - step);
    let (lat_cell, lon_cell) = deinterleave(encode(lon, lat, step, (LAT_MIN, LAT_MAX)));
    let mut ranges: Vec<(f64, f64)> = Vec::with_capacity(9);
    for dlat in [-1, 0, 1] {
        let lat_cell = lat_cell as i64 + dlat;
        if !(0..cells).contains(&lat_cell) {
            continue;
        }
        for dlon in [-1, 0, 1] {
            // Longitude wraps at the antimeridian.
            let lon_cell = (lon_cell as i64 + dlon).rem_euclid(cells);
            let cell = interleave(lat_cell as u32, lon_cell as u32);
            let range = ((cell << shift) as f64, ((cell + 1) << shift) as f64);
            if !ranges.contains(&range) {
                ranges.push(range);
            }
        }
    }
    ranges
}

/// Stores a search's matches under `dest` (scores as geohashes, or as distances in the
/// search's unit); their number.
fn store(ctx: &mut Ctx, dest: &Bytes, found: Vec<Found>, as_dist: bool, unit: f64) -> Reply {
    let mut out = ZSet::new();
    for (member, d, score, _) in found {
        out.insert(member, if as_dist { d / unit } else { score });
    }
    Reply::Int(super::zsets::store(ctx, dest, out))
}

/// Runs `search` on the sorted set under `key`: its matches, or none for a missing key.
fn matches(ctx: &mut Ctx, key: &[u8], search: &Search) -> Result<Vec<Found>, Reply> {
    match ctx.read_zset(key)? {
        Some(z) => search.run(z),
        None => Ok(Vec::new()),
    }
}

/// GEOSEARCH key FROMMEMBER m | FROMLONLAT lon lat  BYRADIUS r unit | BYBOX w h unit
/// [ASC|DESC] [COUNT n [ANY]] [WITHCOORD] [WITHDIST] [WITHHASH]
pub fn geosearch(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let mut search = Search::new(None);
    search.options(&args[2..], true, false)?;
    let found = matches(ctx, &args[1], &search)?;
    Ok(search.reply(found))
}

/// GEOSEARCHSTORE dest src (GEOSEARCH's options, without WITH*) [STOREDIST]
pub fn geosearchstore(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let store_dist = args.last().is_some_and(|a| eq(a, "storedist"));
    let options = &args[3..args.len() - usize::from(store_dist)];
    let mut search = Search::new(None);
    search.options(options, true, false)?;
    if search.with_coord || search.with_dist || search.with_hash {
        return Err(Reply::err(
            "ERR GEOSEARCHSTORE is not compatible with WITHDIST, WITHHASH and WITHCOORD options",
        ));
    }
    let found = matches(ctx, &args[2], &search)?;
    Ok(store(ctx, &args[1], found, store_dist, search.unit))
}

/// GEORADIUS key lon lat radius unit [...] and GEORADIUSBYMEMBER key member radius unit
/// [...], with their `_RO` forms (which refuse STORE).
pub fn georadius(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let by_member = ctx.name.starts_with("georadiusbymember");
    let read_only = ctx.name.ends_with("_ro");
    let (center, rest) = if by_member {
        (Center::Member(args[2].clone()), &args[3..])
    } else {
        let (lon, lat) = point(&args[2], &args[3])?;
        (Center::Point(lon, lat), &args[4..])
    };
    if rest.len() < 2 {
        return Err(Reply::err(errors::SYNTAX));
    }
    let mut search = Search::new(Some(center));
    search.unit = unit(&rest[1])?;
    search.shape = Some(Shape::Radius(radius(&rest[0])? * search.unit));
    search.options(&rest[2..], false, !read_only)?;
    let found = matches(ctx, &args[1], &search)?;
    Ok(match search.store.take() {
        Some((dest, as_dist)) => store(ctx, &dest, found, as_dist, search.unit),
        None => search.reply(found),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_interleave_and_decode_to_the_cell_centre() {
        for (lat, lon) in [(0u32, 0u32), (1, 0), (0, 1), ((1 << 26) - 1, 12345), (987_654, (1 << 26) - 1)] {
            assert_eq!(deinterleave(interleave(lat, lon)), (lat, lon));
        }
        // Palermo, as redis-server stores it: GEOADD Sicily 13.361389 38.115556 Palermo.
        let score = encode(13.361389, 38.115556, STEPS, (LAT_MIN, LAT_MAX));
        assert_eq!(score, 3479099956230698);
        let (lon, lat) = decode(score as f64);
        assert!((lon - 13.361389).abs() < 1e-5 && (lat - 38.115556).abs() < 1e-5, "{lon} {lat}");
    }

    #[test]
    fn the_cells_around_a_point_cover_its_reach() {
        // Every point within `reach` of the centre falls in one of the cells.
        let (lon, lat) = (179.9, 60.0);
        for reach in [10.0, 5_000.0, 200_000.0] {
            let ranges = cells_around(lon, lat, reach);
            for k in 0..360 {
                let bearing = (k as f64).to_radians();
                // A point about `reach` away (slightly inside), on both sides of the antimeridian.
                let dlat = (reach * 0.99 * bearing.cos() / EARTH_RADIUS_M).to_degrees();
                let dlon =
                    (reach * 0.99 * bearing.sin() / (EARTH_RADIUS_M * lat.to_radians().cos())).to_degrees();
                let mut plon = lon + dlon;
                if plon > 180.0 {
                    plon -= 360.0;
                }
                let score = encode(plon, lat + dlat, STEPS, (LAT_MIN, LAT_MAX)) as f64;
                assert!(
                    ranges.iter().any(|(lo, hi)| score >= *lo && score < *hi),
                    "reach {reach}, bearing {k}"
                );
            }
        }
    }
}
