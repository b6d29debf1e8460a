"""Vocabularies of the demo data: Colombian names, cities, programs, services, events.

Weights are rough Colombian frequencies (only relative values matter); the
derived tables hold each word's spellings (accents, case) for vectorised rendering.
"""

from __future__ import annotations

import numpy as np

from ice_pipeline.dev.demo_data.draw import STR, case_table, strip_accents

# ---------------------------------------------------------------------------
# Vocabularies (weights are rough Colombian frequencies; only relative values
# matter). Accented spellings are the canonical ones; rows strip accents at
# random, as people do when they type.
# ---------------------------------------------------------------------------

FEMALE = [
    ("María", 12),
    ("Laura", 6),
    ("Valentina", 6),
    ("Daniela", 6),
    ("Camila", 6),
    ("Sofía", 5),
    ("Natalia", 5),
    ("Paula", 5),
    ("Andrea", 5),
    ("Carolina", 4),
    ("Juliana", 4),
    ("Mariana", 4),
    ("Alejandra", 4),
    ("Catalina", 3),
    ("Luisa", 3),
    ("Diana", 3),
    ("Sara", 3),
    ("Isabella", 3),
    ("Manuela", 3),
    ("Gabriela", 3),
    ("Lina", 2),
    ("Angélica", 2),
    ("Mónica", 2),
    ("Verónica", 2),
    ("Lucía", 2),
    ("Ximena", 2),
    ("Tatiana", 2),
    ("Melissa", 2),
    ("Estefanía", 2),
    ("Leidy", 2),
    ("Viviana", 2),
    ("Paola", 2),
    ("Johana", 2),
    ("Karen", 2),
    ("Ángela", 2),
    ("Salomé", 2),
    ("Valeria", 3),
    ("Yuliana", 1),
    ("Inés", 1),
    ("Nicole", 1),
]
MALE = [
    ("Juan", 12),
    ("Carlos", 6),
    ("Andrés", 6),
    ("Santiago", 6),
    ("Sebastián", 5),
    ("Alejandro", 4),
    ("Felipe", 4),
    ("David", 5),
    ("Daniel", 5),
    ("Diego", 4),
    ("Luis", 5),
    ("Jorge", 3),
    ("José", 4),
    ("Miguel", 3),
    ("Nicolás", 4),
    ("Camilo", 4),
    ("Esteban", 3),
    ("Mateo", 3),
    ("Samuel", 3),
    ("Julián", 3),
    ("Óscar", 2),
    ("Jesús", 2),
    ("Fernando", 2),
    ("Ricardo", 2),
    ("Álvaro", 2),
    ("Héctor", 2),
    ("Iván", 2),
    ("Jhon", 2),
    ("Brayan", 2),
    ("Cristian", 3),
    ("Kevin", 2),
    ("Mauricio", 2),
    ("Germán", 1),
    ("Rubén", 1),
    ("Simón", 2),
    ("Tomás", 2),
    ("Martín", 2),
    ("Joaquín", 1),
    ("Hernán", 1),
    ("Fabián", 1),
]
FEMALE_2 = [
    ("José", 4),
    ("Fernanda", 4),
    ("Camila", 3),
    ("Alejandra", 3),
    ("Paula", 2),
    ("Isabel", 3),
    ("Victoria", 2),
    ("Lucía", 2),
    ("Andrea", 2),
    ("Marcela", 2),
    ("Cristina", 2),
    ("del Pilar", 2),
    ("Ángel", 1),
]
MALE_2 = [
    ("Carlos", 5),
    ("David", 4),
    ("José", 3),
    ("Felipe", 4),
    ("Andrés", 3),
    ("Esteban", 3),
    ("Camilo", 3),
    ("Sebastián", 3),
    ("Alejandro", 2),
    ("Manuel", 3),
    ("Fernando", 2),
    ("Eduardo", 2),
    ("Antonio", 2),
    ("Ignacio", 1),
    ("de Jesús", 1),
]
SURNAMES = [
    ("Rodríguez", 30),
    ("Gómez", 25),
    ("González", 24),
    ("Martínez", 22),
    ("García", 22),
    ("López", 20),
    ("Hernández", 18),
    ("Sánchez", 17),
    ("Ramírez", 17),
    ("Pérez", 16),
    ("Díaz", 15),
    ("Torres", 14),
    ("Moreno", 14),
    ("Rojas", 13),
    ("Vargas", 12),
    ("Jiménez", 11),
    ("Muñoz", 11),
    ("Castro", 10),
    ("Ortiz", 10),
    ("Álvarez", 10),
    ("Ruiz", 9),
    ("Suárez", 9),
    ("Romero", 9),
    ("Herrera", 9),
    ("Valencia", 8),
    ("Quintero", 7),
    ("Restrepo", 7),
    ("Cárdenas", 7),
    ("Ospina", 6),
    ("Gutiérrez", 8),
    ("Castaño", 5),
    ("Mejía", 6),
    ("Zapata", 6),
    ("Ríos", 6),
    ("Osorio", 6),
    ("Agudelo", 4),
    ("Salazar", 6),
    ("Londoño", 5),
    ("Giraldo", 6),
    ("Arango", 5),
    ("Montoya", 5),
    ("Henao", 4),
    ("Duque", 4),
    ("Gaviria", 3),
    ("Bermúdez", 3),
    ("Peña", 5),
    ("Cabrera", 4),
    ("Parra", 5),
    ("Acosta", 5),
    ("Rincón", 4),
    ("Camacho", 4),
    ("Beltrán", 4),
    ("Niño", 3),
    ("Ibáñez", 2),
    ("Córdoba", 4),
    ("Chávez", 3),
    ("Patiño", 4),
    ("Escobar", 4),
    ("Bernal", 4),
    ("Guzmán", 5),
    ("Aguilar", 4),
    ("Mendoza", 4),
    ("Rueda", 3),
    ("Villamizar", 3),
    ("Barrera", 3),
    ("Forero", 3),
    ("Cortés", 4),
    ("Caicedo", 3),
    ("Mosquera", 3),
    ("Palacios", 3),
    ("Pineda", 3),
    ("Sierra", 3),
    ("Vélez", 4),
    ("Uribe", 3),
    ("Núñez", 2),
    ("De la Hoz", 1),
    ("Del Castillo", 1),
]

# (label, department, DANE code, landline area digit, extra alias, weight)
CITIES = [
    ("Bogotá", "Bogotá D.C.", "11001", "1", "Bogotá D.C.", 35),
    ("Medellín", "Antioquia", "05001", "4", "Medellin, Antioquia", 15),
    ("Cali", "Valle del Cauca", "76001", "2", "Santiago de Cali", 10),
    ("Barranquilla", "Atlántico", "08001", "5", "B/quilla", 7),
    ("Cartagena", "Bolívar", "13001", "5", "Cartagena de Indias", 4),
    ("Bucaramanga", "Santander", "68001", "7", "B/manga", 5),
    ("Pereira", "Risaralda", "66001", "6", "Pereira, Risaralda", 4),
    ("Manizales", "Caldas", "17001", "6", "Manizales, Caldas", 3),
    ("Cúcuta", "Norte de Santander", "54001", "7", "San José de Cúcuta", 3),
    ("Ibagué", "Tolima", "73001", "8", "Ibague, Tolima", 3),
    ("Santa Marta", "Magdalena", "47001", "5", "Sta. Marta", 2),
    ("Villavicencio", "Meta", "50001", "8", "Villavo", 2),
    ("Pasto", "Nariño", "52001", "2", "San Juan de Pasto", 2),
    ("Armenia", "Quindío", "63001", "6", "Armenia, Quindío", 2),
    ("Chía", "Cundinamarca", "25175", "1", "Chia, Cundinamarca", 1.5),
    ("Soacha", "Cundinamarca", "25754", "1", "Soacha, Cundinamarca", 1.5),
    ("Envigado", "Antioquia", "05266", "4", "Envigado, Antioquia", 1.5),
    ("Popayán", "Cauca", "19001", "2", "Popayan, Cauca", 1),
    ("Tunja", "Boyacá", "15001", "8", "Tunja, Boyacá", 1),
    ("Neiva", "Huila", "41001", "8", "Neiva, Huila", 1),
]
CITY_VARIANT_P = [0.40, 0.22, 0.08, 0.12, 0.06, 0.06, 0.06]

COUNTRY_VARIANTS = [
    ("Colombia", 0.55),
    ("COLOMBIA", 0.20),
    ("co", 0.06),
    ("CO", 0.05),
    ("colombia", 0.05),
    (" Colombia ", 0.05),
    ("Col", 0.04),
]
COUNTRIES = [  # (code, label, aliases, calling code)
    ("CO", "Colombia", ["COLOMBIA", "co", "Col", "colombia", "República de Colombia"], "+57"),
    ("US", "Estados Unidos", ["USA", "EEUU", "EE.UU.", "United States", "Estados Unidos de América"], "+1"),
    ("VE", "Venezuela", ["VENEZUELA", "ve"], "+58"),
    ("EC", "Ecuador", ["ECUADOR", "ec"], "+593"),
    ("MX", "México", ["Mexico", "MEXICO", "mx"], "+52"),
    ("CA", "Canadá", ["Canada", "CANADA", "ca"], "+1"),
    ("ES", "España", ["Espana", "ESPAÑA", "es", "Spain"], "+34"),
]

# (code, label, aliases, values used in data that are NOT in reference data, weight)
PROGRAMS = [
    (
        "AU_PAIR",
        "Au Pair",
        ["AU PAIR", "Au-Pair", "au pair", "aupair", "AuPair"],
        ["Au Pair USA", "Au pair Estados Unidos"],
        0.40,
    ),
    (
        "WORK_TRAVEL",
        "Work & Travel",
        ["Work and Travel", "WORK & TRAVEL", "work and travel", "W&T", "Work&Travel"],
        ["Work n Travel", "Trabajo y viaje"],
        0.25,
    ),
    (
        "CAMP_COUNSELOR",
        "Camp Counselor",
        ["CAMP COUNSELOR", "Camp Counsellor", "camp counselor", "Campamentos"],
        ["Camp USA"],
        0.10,
    ),
    (
        "INTERCAMBIO",
        "Intercambio Académico",
        ["Intercambio", "INTERCAMBIO", "intercambio academico", "High School Exchange"],
        ["Intercambio colegio"],
        0.12,
    ),
    (
        "INTERNSHIP",
        "Internship",
        ["INTERNSHIP", "Prácticas", "Practicas profesionales", "Pasantía"],
        ["Prácticas en el exterior"],
        0.08,
    ),
    (
        "STUDY_ABROAD",
        "Estudios en el Exterior",
        ["Study Abroad", "Estudiar en el exterior", "ESTUDIOS EXTERIOR"],
        ["Estudios exterior 2025"],
        0.05,
    ),
]
PROGRAM_CODES = [p[0] for p in PROGRAMS]

# services offered (reference category "service"): programs plus advisory services
SERVICES = [
    ("AU_PAIR", "Au Pair", ["AU PAIR", "Au-Pair", "au pair"]),
    ("WORK_TRAVEL", "Work & Travel", ["Work and Travel", "WORK AND TRAVEL"]),
    ("CAMP_COUNSELOR", "Camp Counselor", ["Camp Counsellor", "Campamentos"]),
    ("INTERCAMBIO", "Intercambio Académico", ["Intercambio", "Intercambio academico"]),
    ("ASESORIA_VISA", "Asesoría de Visa", ["Asesoria de visa", "Asesoría visa", "Visa J-1"]),
    ("CURSO_INGLES", "Curso de Inglés", ["Curso de ingles", "Inglés", "English course"]),
    ("SEGURO_VIAJE", "Seguro de Viaje", ["Seguro de viaje", "Seguro médico internacional"]),
]
UNKNOWN_SERVICES = ["Tiquetes aéreos", "Visa de turismo", "Pasantía Canadá", "Asesoria migratoria"]

EVENTS = [  # (code, label, date, city, service)
    ("EXPO_AUPAIR_BOG_2024", "Expo Au Pair Bogotá 2024", "2024-05-10", "Bogotá", "AU_PAIR"),
    ("FERIA_WAT_MED_2024", "Feria Work & Travel Medellín", "2024-03-16", "Medellín", "WORK_TRAVEL"),
    ("CHARLA_UNAL_2023", "Charla Universidad Nacional", "2023-09-21", "Bogotá", "INTERCAMBIO"),
    ("WEBINAR_VISA_2024_02", "Webinar Visa J-1", "2024-02-08", "Virtual", "ASESORIA_VISA"),
    ("FERIA_EXTERIOR_CALI_2023", "Feria Estudiar en el Exterior Cali", "2023-10-14", "Cali", "INTERCAMBIO"),
    ("EXPO_CAMP_BAQ_2024", "Expo Campamentos Barranquilla", "2024-01-27", "Barranquilla", "CAMP_COUNSELOR"),
    ("OPEN_HOUSE_BUC_2024", "Open House Bucaramanga", "2024-06-01", "Bucaramanga", "AU_PAIR"),
    ("FERIA_EAFIT_2024", "Feria Internacional EAFIT", "2024-04-18", "Medellín", "WORK_TRAVEL"),
    ("WEBINAR_AUPAIR_2024_07", "Webinar Au Pair Julio", "2024-07-11", "Virtual", "AU_PAIR"),
    ("CHARLA_JAVERIANA_2024", "Charla Javeriana Work & Travel", "2024-08-22", "Bogotá", "WORK_TRAVEL"),
]
UNKNOWN_EVENTS = [
    "Charla Colegio San Bartolomé",
    "Feria Uniandes 2022",
    "Instagram Live Au Pair",
    "Evento Cámara de Comercio",
]

STATUSES = [
    ("NEW", 18),
    ("CONTACTED", 11),
    ("QUALIFIED", 5),
    ("nuevo", 12),
    ("Nuevo", 8),
    ("Interesado", 10),
    ("interesada", 3),
    ("Contactado", 8),
    ("NO CONTESTA", 4),
    ("No interesado", 4),
    ("Inscrito", 3),
    ("EN PROCESO", 3),
    (" Nuevo ", 2),
]

NOTES = [
    "Interesada en viajar en 2025",
    "Llamar después de las 6 p.m.",
    "Pregunta por costos, fechas y requisitos",
    'Dijo: "quiero más información"',
    "Primera llamada: no contestó\nSegunda llamada: interesado, enviar brochure",
    "Tiene pasaporte; no tiene visa",
    'Referido por "Camila", contactar por WhatsApp',
    "Nivel de inglés: B2, estudiante de 7° semestre",
    "No volver a llamar",
    "Quiere saber si puede ir con su novio/novia, ¿es posible?",
    "Envió documentos por correo\r\npendiente revisar",
    "Mamá pregunta por el programa, hija de 17 años",
    'Asistió a la charla; pidió "más detalles" sobre el seguro, el alojamiento y la visa',
    "Ya aplicó en 2023 ,  quiere reintentar",
    "Ocupado, llamar luego",
    "Escribió por Instagram 👋",
]

# (file, sheet, weight, P(cedula missing), P(event present), program bias)
LEAD_SOURCES = [
    ("leads_2024_ferias.csv", None, 0.24, 0.35, 0.90, None),
    ("leads_web_form.csv", None, 0.28, 0.50, 0.35, None),
    ("Base Au Pair 2023.xlsx", "Hoja1", 0.14, 0.15, 0.45, "AU_PAIR"),
    ("Base Au Pair 2023.xlsx", "Seguimiento", 0.05, 0.20, 0.30, "AU_PAIR"),
    ("leads_2023_eventos.csv", None, 0.11, 0.40, 0.95, None),
    ("Base Work and Travel 2024.xlsx", "Leads", 0.12, 0.15, 0.45, "WORK_TRAVEL"),
    ("referidos_instagram.csv", None, 0.06, 0.70, 0.20, None),
]

STUDENT_SOURCES = ["directory+csv", "csv_only", "directory_only"]
STUDENT_SOURCE_P = [0.55, 0.30, 0.15]

DOC_TYPES = ["PASSPORT", "CEDULA", "VISA_FORM", "PHOTO", "BANK_STATEMENT"]
DOC_ORIGINAL_NAMES = {
    "PASSPORT": ["Pasaporte escaneado", "pasaporte", "PASAPORTE (1)", "scan pasaporte 2023"],
    "CEDULA": ["cedula ambas caras", "Cédula", "CC escaneada", "documento identidad"],
    "VISA_FORM": ["DS-160 confirmación", "formulario visa", "DS160", "Formulario DS-2019"],
    "PHOTO": ["foto 5x5 fondo blanco", "IMG_20230412_101512", "foto visa", "WhatsApp Image 2023-08-01"],
    "BANK_STATEMENT": [
        "extracto bancario marzo",
        "Certificado Bancolombia",
        "extracto Davivienda",
        "certificado bancario",
    ],
}

JUNK_CEDULAS = ["N/A", "0", "1111111111", "12", "no tiene", "NA", "-", "0000000"]
IMPOSSIBLE_DATES = ["31/02/{y}", "30/02/{y}", "31/04/{y}", "{y}-02-30", "31-06-{y}", "29/02/2023"]

LOREM = (
    "El aspirante manifiesta interés en el programa y solicita información detallada sobre "
    "costos, fechas de salida, requisitos de idioma, seguro médico, alojamiento y visa; "
    "se le explicó el proceso completo, quedó pendiente enviar documentos. "
)


_GIVEN = [w for w, _ in FEMALE + MALE + FEMALE_2 + MALE_2]
F0, M0 = 0, len(FEMALE)
F2_0 = len(FEMALE) + len(MALE)
M2_0 = F2_0 + len(FEMALE_2)
GIVEN_T = case_table(_GIVEN)
SUR_T = case_table([w for w, _ in SURNAMES])
# e-mail spellings: lower case, no accents, no spaces; capitalised variant too
GIVEN_MAIL = np.array([strip_accents(w).lower().replace(" ", "") for w in _GIVEN], dtype=STR)
GIVEN_MAIL_C = np.array([strip_accents(w).title().replace(" ", "") for w in _GIVEN], dtype=STR)
SUR_MAIL = np.array([strip_accents(w).lower().replace(" ", "") for w, _ in SURNAMES], dtype=STR)
SUR_MAIL_C = np.array([strip_accents(w).title().replace(" ", "") for w, _ in SURNAMES], dtype=STR)
DOMAINS = [
    ("gmail.com", 55),
    ("hotmail.com", 18),
    ("yahoo.com", 6),
    ("outlook.com", 7),
    ("hotmail.es", 3),
    ("yahoo.es", 3),
    ("live.com", 2),
    ("unal.edu.co", 2),
    ("javeriana.edu.co", 2),
    ("icloud.com", 2),
]
DOMAIN_T = np.array(
    [
        [
            d,
            d.capitalize(),
            d.upper(),
            d.split(".")[0].capitalize() + "." + ".".join(d.split(".")[1:]).upper(),
        ]
        for d, _ in DOMAINS
    ],
    dtype=STR,
)
CITY_T = np.array(
    [
        [c, strip_accents(c), c.upper(), strip_accents(c).upper(), strip_accents(c).lower(), alias, f" {c} "]
        for c, dep, _, _, alias, _ in CITIES
    ],
    dtype=STR,
)
CITY_AREA = np.array([a for _, _, _, a, _, _ in CITIES], dtype=STR)
