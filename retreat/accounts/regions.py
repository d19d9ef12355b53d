"""Region codes for licences and retreat locations: the US states and territories by their USPS code,
plus a few other regions as codes. One list, read by the licence form, the retreat form and the
staffing rule (a licence covers a session when its code equals the retreat's region code)."""

from __future__ import annotations

US_STATES = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California",
    "CO": "Colorado", "CT": "Connecticut", "DE": "Delaware", "DC": "District of Columbia",
    "FL": "Florida", "GA": "Georgia", "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois",
    "IN": "Indiana", "IA": "Iowa", "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana",
    "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts", "MI": "Michigan", "MN": "Minnesota",
    "MS": "Mississippi", "MO": "Missouri", "MT": "Montana", "NE": "Nebraska", "NV": "Nevada",
    "NH": "New Hampshire", "NJ": "New Jersey", "NM": "New Mexico", "NY": "New York",
    "NC": "North Carolina", "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma", "OR": "Oregon",
    "PA": "Pennsylvania", "RI": "Rhode Island", "SC": "South Carolina", "SD": "South Dakota",
    "TN": "Tennessee", "TX": "Texas", "UT": "Utah", "VT": "Vermont", "VA": "Virginia",
    "WA": "Washington", "WV": "West Virginia", "WI": "Wisconsin", "WY": "Wyoming",
    "PR": "Puerto Rico", "GU": "Guam", "VI": "U.S. Virgin Islands",
}
OTHER_REGIONS = {
    "CA-BC": "British Columbia (Canada)", "CA-ON": "Ontario (Canada)",
    "MX-BCS": "Baja California Sur (Mexico)", "CR": "Costa Rica", "NL": "Netherlands",
    "PT": "Portugal", "GB": "United Kingdom",
}
REGIONS = {**US_STATES, **OTHER_REGIONS}
REGION_CHOICES = [(code, f"{name} ({code})") for code, name in REGIONS.items()]
_BY_NAME = {name.upper(): code for code, name in REGIONS.items()}


def normalize_region(raw: str | None) -> str | None:
    """A known region code for a code or a full name (any case), else None."""
    text = (raw or "").strip().upper()
    if text in REGIONS:
        return text
    return _BY_NAME.get(text)


def region_name(code: str) -> str:
    return REGIONS.get(code, code)
