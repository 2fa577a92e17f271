"""Fixed vocabularies the generator draws from (French-flavoured, with accents on purpose)."""

from __future__ import annotations

from typing import Any

FIRST_NAMES = [
    "Jean",
    "Marie",
    "Élodie",
    "François",
    "Luc",
    "Chloé",
    "Hélène",
    "Noël",
    "Camille",
    "Théo",
    "Inès",
    "Sébastien",
    "Anaïs",
    "Jérôme",
    "Zoé",
    "Paul",
    "Léa",
    "Hugo",
    "Maëlle",
    "Gaëtan",
]
LAST_NAMES = [
    "Martin",
    "Bernard",
    "Dubois",
    "Lefèvre",
    "Moreau",
    "Laurent",
    "Garçon",
    "Roux",
    "Fournier",
    "Girard",
    "Bonnet",
    "Dupont",
    "Lambert",
    "Fontaine",
    "Rousseau",
    "Vincent",
    "Müller",
    "Faure",
    "André",
    "Mercier",
    "O'Neil",
    "Da Silva",
]
COMPANY_A = [
    "Boulangerie",
    "Hôtel",
    "Clinique",
    "Garage",
    "Pharmacie",
    "Résidence",
    "Lycée",
    "Société",
    "Cabinet",
    "Brasserie",
    "Atelier",
    "Supermarché",
    "Mairie",
    "Entrepôt",
]
COMPANY_B = [
    "du Centre",
    "des Lilas",
    "Saint-Michel",
    "Bellevue",
    "Pasteur",
    "de la Gare",
    "Voltaire",
    "Les Érables",
    "du Port",
    "Montaigne",
    "Lumière",
    "des Alpes",
    "Jean Jaurès",
    "du Lac",
]
STREETS = [
    "rue de la République",
    "avenue Victor Hugo",
    "boulevard Haussmann",
    "rue des Écoles",
    "chemin du Moulin",
    "place de l'Église",
    "rue Pasteur",
    "allée des Tilleuls",
    "quai de Saône",
    "rue du Faubourg Saint-Antoine",
    "impasse des Peupliers",
    "route de Lyon",
]
CITIES = [
    ("Paris", "75011", 48.8566, 2.3522),
    ("Lyon", "69003", 45.7640, 4.8357),
    ("Marseille", "13008", 43.2965, 5.3698),
    ("Toulouse", "31000", 43.6047, 1.4442),
    ("Nice", "06000", 43.7102, 7.2620),
    ("Nantes", "44000", 47.2184, -1.5536),
    ("Strasbourg", "67000", 48.5734, 7.7521),
    ("Bordeaux", "33000", 44.8378, -0.5792),
    ("Lille", "59000", 50.6292, 3.0573),
    ("Rennes", "35000", 48.1173, -1.6778),
    ("Besançon", "25000", 47.2378, 6.0241),
    ("Orléans", "45000", 47.9030, 1.9093),
    ("Genève", "1204", 46.2044, 6.1432),
    ("Bruxelles", "1000", 50.8503, 4.3517),
]
COUNTRY_OF = {"Genève": "Switzerland", "Bruxelles": "Belgium"}
MAIL_DOMAINS = ["example.com", "example.fr", "mail.example.org", "entreprise.example"]
TAGS = ["VIP", "maintenance", "contrat annuel", "nouveau", "B2B", "particulier", "urgent", "région sud"]
SEGMENTS = ["PME", "Grand compte", "Particulier", "Collectivité"]
TECHNICIANS: list[dict[str, Any]] = [
    {"id": 300 + i, "name": f"{FIRST_NAMES[i * 3 % 20]} {LAST_NAMES[i * 5 % 22]}", "login": f"tech{i + 1:02d}"}
    for i in range(14)
]
TECH_SHORT = [{"id": t["id"], "name": t["name"]} for t in TECHNICIANS]
JOB_TYPES: list[dict[str, Any]] = [
    {"id": 10 + i, "name": n}
    for i, n in enumerate(
        [
            "Maintenance préventive",
            "Dépannage",
            "Installation",
            "Mise en service",
            "Contrôle annuel",
            "Visite technique",
        ]
    )
]
DESCRIPTIONS = [
    "Remplacement du filtre et contrôle général",
    "Fuite signalée sous l'évier",
    "Installation d'une chaudière à condensation",
    "Chaudière en panne, pas d'eau chaude",
    "Contrôle annuel de la climatisation",
    "Mise en service pompe à chaleur",
    "Bruit anormal au démarrage",
    "Remplacement thermostat — client absent le matin",
    "Vérification des détecteurs de fumée",
    "Intervention suite à devis accepté",
    "Diagnostic électrique tableau principal",
    "Détartrage ballon d'eau chaude",
]
PRODUCTS = [
    ("FIL-200", "Filtre à air 200mm", 18.5),
    ("THR-01", "Thermostat programmable", 89.9),
    ("VAN-34", 'Vanne 3/4"', 12.0),
    ("JNT-10", "Joint fibre (lot de 10)", 4.35),
    ("MO-H", "Main d'œuvre (heure)", 55.0),
    ("DEP", "Déplacement", 35.0),
    ("PAC-9K", "Pompe à chaleur 9kW", 4890.0),
    ("CAP-CO", "Détecteur CO", 29.99),
    ("GAZ-R32", "Fluide R32 (kg)", 74.2),
    ("CBL-25", "Câble 2.5mm² (m)", 1.15),
    ("", "Forfait intervention", 120.0),
    ("DIV", "Fournitures diverses", 9.6),
]
TAX_RATES = [20.0, 20.0, 20.0, 10.0, 5.5]
LOCALIZED_QTY = ["2,00", "1,5", "0,75", "3,00", "1,00", "12,5"]
NUMERIC_QTY = [1, 1, 1, 2, 3, 4, 0.5, 1.5, 10]

JOB_STATUS_PAST = (
    ["completed"] * 10
    + ["validated"] * 12
    + ["cancelled"] * 2
    + ["started"]
    + ["paused"]
    + ["scheduled"]
    + ["synchronized"]
)
JOB_STATUS_FUTURE = ["created"] * 3 + ["scheduled"] * 5 + ["synchronized"] * 3 + ["cancelled"]
INVOICE_STATUS = ["draft"] * 2 + ["new"] * 2 + ["sent"] * 3 + ["paid"] * 8 + ["late"] * 2 + ["cancelled"]
QUOTATION_STATUS = ["draft"] * 3 + ["new"] * 3 + ["sent"] * 4 + ["accepted"] * 5 + ["denied"] * 2
CREDITNOTE_STATUS = INVOICE_STATUS

# -- dimensions (users, job types, parts, equipment, activities) ------------------------------------
TEAMS = [{"id": 1, "name": "Équipe Nord"}, {"id": 2, "name": "Équipe Sud"}, {"id": 3, "name": "SAV"}]
OFFICE_PROFILES = ["manager"] * 4 + ["dispatcher"] * 3 + ["administrator"]
JOB_TYPE_MINUTES = [90, 60, 240, 120, 60, 45]  # durations of JOB_TYPES, in their order
MORE_JOB_TYPES = [
    ("Réparation", 120),
    ("Entretien chaudière", 60),
    ("Ramonage", 45),
    ("Audit énergétique", 180),
    ("Astreinte", 60),
    ("Désinstallation", 90),
    ("Relevé de compteur", 30),
    ("Formation client", 60),
]
PART_FAMILIES = [
    ("FIL", "Filtre"),
    ("VAN", "Vanne"),
    ("JNT", "Joint"),
    ("RAC", "Raccord laiton"),
    ("CIR", "Circulateur"),
    ("SON", "Sonde de température"),
    ("DIS", "Disjoncteur"),
    ("ELV", "Électrovanne"),
    ("BRU", "Gicleur brûleur"),
    ("TUB", "Tube cuivre"),
    ("CDE", "Carte électronique"),
    ("VEX", "Vase d'expansion"),
]
PART_SIZES = ["modèle A", "modèle B", "modèle C", "série 200", "série 300", "série 500", "pro"]
SERVICES = ["Forfait diagnostic", "Main d'œuvre urgence (heure)", "Contrat d'entretien annuel", "Mise en conformité"]
SERVICE_REFERENCES = {"MO-H", "DEP", ""}  # the PRODUCTS that are services (labour, travel, flat fee)
EQUIPMENT_KINDS = [
    "Chaudière gaz à condensation",
    "Pompe à chaleur air/eau",
    "Climatiseur mural",
    "Ballon d'eau chaude 200L",
    "Tableau électrique",
    "VMC double flux",
    "Adoucisseur d'eau",
    "Chaudière fioul",
]
EQUIPMENT_BRANDS = ["Viessmann", "Daikin", "Atlantic", "Saunier Duval", "De Dietrich", "Frisquet", "Legrand"]
ACTIVITY_TYPES = {
    "work": {"id": 1, "name": "work"},
    "travel": {"id": 2, "name": "travel"},
    "break": {"id": 3, "name": "break"},
}
WORK_NOTES = ["Attente client", "Pièce manquante, retour prévu", "Accès difficile", "RAS"]
BREAK_NOTES = ["Pause déjeuner", "Pause"]
