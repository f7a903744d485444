// Distances, bearings and their wording for the screens (the server gives them; these only format).

const POINTS = ["N", "NE", "E", "SE", "S", "SW", "W", "NW"];

export function distanceText(m) {
  if (m == null || Number.isNaN(m)) return "distance unknown";
  return m < 1000 ? `${Math.round(m / 10) * 10} m` : `${(m / 1000).toFixed(1)} km`;
}

export function bearingText(deg) {
  if (deg == null || Number.isNaN(deg)) return "direction unknown";
  const d = ((deg % 360) + 360) % 360;
  return `${POINTS[Math.round(d / 45) % 8]} (${Math.round(d)}°)`;
}
