"""Every probability of the demo data, named: what share of rows or people shows each trait.

Changing a value changes the data of every seed (tests pin some counts); the
rates are rough shares seen in V3's real captures, not measured statistics.
"""

from __future__ import annotations

# --- people (persons.py)
P_FEMALE = 0.56
P_SECOND_GIVEN_NAME = 0.45
P_HOUSEHOLD_LANDLINE = 0.45
P_STUDENT_ONLY = 0.20  # role: student only ...
P_STUDENT_OR_BOTH = 0.55  # ... below this: student and lead; above: lead only
LEAD_FILE_COUNT_P = [0.68, 0.22, 0.10]  # a lead person appears in 1, 2 or 3 source files
CEDULA_LENGTH_P = [0.72, 0.20, 0.03, 0.03, 0.02]  # for lengths 10, 8, 9, 7, 6
EMAIL_PATTERN_P = [
    0.35,
    0.25,
    0.15,
    0.10,
    0.15,
]  # given.surname, givensurname, gsurname, given_surname, surname.given
P_SON_SECOND_NAME = 0.5
P_FATHER_TWO_LEADS = 0.5
P_SIBLING_YOUNGER = 0.5
P_PARENT_MOTHER = 0.6  # the siblings' shared e-mail is their mother's

# --- how values are written (values.py)
P_DROP_SECOND_GIVEN_NAME = 0.12
P_DROP_SECOND_SURNAME = 0.08
P_SURNAME_FIRST_UPPER = 0.15  # "RODRIGUEZ GOMEZ MARIA" in upper-case listings
P_SURNAME_FIRST = 0.03
P_FULL_NAME_TIDIED = 0.35  # V3 tidied full_name's spacing; original_name keeps the capture
P_NO_ORIGINAL_NAME = 0.20
P_JUNK_CEDULA = 0.008
P_BAD_EMAIL = 0.006
P_LANDLINE_GIVEN = 0.22  # of people with a household landline, rows giving it instead of the mobile
P_IMPOSSIBLE_BIRTH_DATE = 0.005

# --- rows (generate.py)
P_LEAD_DUPLICATE_IN_FILE = 0.03
P_STUDENT_LISTED_TWICE = 0.02
LEAD_FAILURE_RATE = 0.015  # V3's failed lead rows, per lead row
# missing values: (student row, lead row, directory-only student row)
MISSING_EMAIL = (0.10, 0.15, 0.75)
MISSING_PHONE = (0.12, 0.12, 0.75)
MISSING_BIRTH_DATE = (0.20, 0.35, 0.60)
MISSING_ADDRESS = (0.30, 0.40, 0.85)
MISSING_CITY = (0.12, 0.15, 0.50)
MISSING_COUNTRY = (0.20, 0.22, 0.60)
MISSING_CEDULA_DIRECTORY_STUDENT = 0.45
MISSING_CEDULA_STUDENT = 0.08  # leads: per source file (names.LEAD_SOURCES)
MISSING_STUDENT_PROGRAM = 0.10
MISSING_STUDENT_NUMBER_CSV_ONLY = 0.20
MISSING_STUDENT_NUMBER = 0.06
P_INTEREST_FILE_PROGRAM = 0.85  # a program-specific lead file: the lead wants that program
P_INTEREST_OWN_PROGRAM = 0.75  # otherwise the person's own program, else any
MISSING_INTEREST_PROGRAM = 0.15
P_SERVICE_OF_PROGRAM = 0.6  # the service of the interest program ...
P_SERVICE_VISA = 0.85  # ... below this: visa advice; above: any service
P_SERVICE_ALIAS = 0.10
P_UNKNOWN_SERVICE = 0.05
MISSING_SERVICE = 0.35
P_UNKNOWN_EVENT = 0.10
MISSING_STATUS = 0.08
MISSING_NOTES = 0.65

# --- documents (documents.py)
P_STUDENT_WITH_DOCUMENTS = 0.40
DOCUMENT_COUNT_P = [0.5, 0.3, 0.2]  # 1, 2 or 3 documents
P_CEDULA_AS_JPEG = 0.5
MISSING_CHECKSUM = 0.20
MISSING_MIME_TYPE = 0.15
MISSING_ORIGINAL_PATH = 0.10
