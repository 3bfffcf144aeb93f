"""ONDE exports written by hand the way real ones are, one school per layout: not by
tools/onde_generator, so that the reader is held to the files schools and académies really
send (their headers, quoting, line ends, encodings and habits, as public ENT projects'
fixtures and importers show them).

- ``BE1D``: BE1D pupils (every value quoted, dates ``2018-03-14``, sex ``H``/``F``, rows
  ending with ``;``, LF) and parents (25 header fields with ``Numéro de poste``, values
  unquoted, rows stopping after their last child, CRLF, no final line break, ``MLLE``, one
  parent on two rows at two addresses), ISO-8859-1; the school's teachers file, quoted, with
  a teacher of two classes on one row and two ``Classe`` columns.
- ``WITH_INE``: the pupils layout with INE, ``Libellé classe``, ``Identifiant classe`` and
  ``Dispositif(s)``, Windows-1252 (``Œ``); parents BE1D of 24 fields, every value quoted and
  rows padded to the header, which write classes as ``CLASSE  CE2`` where the pupils file
  says ``Classe de M. Machin``; teachers in UTF-8 with a byte order mark.
- ``PARENTS_2021``: the parents layout since 2021 (``Nom de famille élève``, ``Date de
  naissance élève``, ``Classes élèves``, ``PCS``, ``Communication adresses``, a row per
  parent and child), files named as ONDE downloads them (``CSVExtraction.csv``,
  ``CSVExtraction(1).csv``), UTF-8 with a byte order mark after a spreadsheet saved them;
  homonyms of one level told apart by birth date.
- ``PARENTS_LATER``: the later child columns (``Nom de l'élève``, ``Prénom de l'élève``,
  ``Classes de l'élève``), the class first.
"""

BOM = b"\xef\xbb\xbf"


def _lines(*rows: str, end: str = "\r\n", final: bool = True) -> str:
    return end.join(rows) + (end if final else "")


# --- BE1D ---------------------------------------------------------------------------------

BE1D_PUPILS = _lines(
    '"Nom Elève";"Nom d\'usage Elève";"Prénom Elève";"Date naissance";"Sexe";"Adresse1";"Cp1";'
    '"Commune1";"Pays1";"Adresse2";"Cp2";"Commune2";"Pays2";" Cycle";"Niveau";"Classe";'
    '"Attestation fournie";"Autorisations associations";"Autorisations photos";'
    '"Décision de passage"',
    '"BELMONDO";;"Léa";"2018-03-14";"F";"3 rue du Lac";"74000";"Annecy";"FRANCE";;;;;'
    '"CYCLE II";"CE1";"CE1 Mme Favre";"Oui";"Non";"Oui";',
    '"BELMONDO";;"Noé";"2015-11-02";"H";"3 rue du Lac";"74000";"Annecy";"FRANCE";'
    '"12 route de Thônes";"74230";"Thônes";"FRANCE";"CYCLE III";"CM2";"CM1-CM2";"Oui";"Oui";'
    '"Oui";',
    '"N\'DIAYE";"N\'DIAYE-FALL";"Aïssatou";"17/08/2019";"F";"8 chemin des Écoliers";"74000";'
    '"Annecy";"FRANCE";;;;;"CYCLE II";"CP";"CP";"Non";"Oui";"Non";',
    '"MARTIN";;"Zoé";"2016-01-20";"F";;;;;;;;;"CYCLE III";"CM1";"CM1-CM2";"Oui";"Oui";"Oui";',
    '"MARTIN";;"Zoé";"2018-09-05";"F";;;;;;;;;"CYCLE II";"CE1";"CE1 Mme Favre";"Non";"Non";"Non";',
    '"DURAND";;"Hugo";"2019-02-11";"H";"5 rue Sommeiller";"74000";"Annecy";"FRANCE";;;;;'
    '"CYCLE II";"CP";;"Non";"Non";"Non";',
    end="\n",
).encode("iso-8859-1")

BE1D_PARENTS = _lines(
    "Civilité Responsable;Nom usage responsable;Nom responsable;Prénom responsable;"
    "Adresse responsable;CP responsable;Commune responsable;Pays;Courriel;Téléphone domicile;"
    "Téléphone travail;Numéro de poste;Téléphone portable;"
    + "Nom d'usage enfant;Nom de famille enfant;Prénom enfant;Classes enfants;" * 2
    + "Nom d'usage enfant;Nom de famille enfant;Prénom enfant;Classes enfants",
    "MME;;BELMONDO;Sophie;3 rue du Lac;74000;Annecy;FRANCE;sophie.belmondo@example.org;;;;"
    "06 11 22 33 44;;BELMONDO;Léa;CE1 Mme Favre;;BELMONDO;Noé;CM1-CM2",
    "M.;;BELMONDO;Marc;12 route de Thônes;74230;Thônes;FRANCE;marc.belmondo@example.org;;;;;;"
    "BELMONDO;Noé;CM1-CM2",
    "M.;;BELMONDO;Marc;3 rue du Lac;74000;Annecy;FRANCE;marc.belmondo@example.org;;;;;;"
    "BELMONDO;Léa;CE1 Mme Favre",
    "MLLE;;FALL;Awa;8 chemin des Écoliers;74000;Annecy;FRANCE;;04 50 00 00 00;;;;N'DIAYE-FALL;"
    "N'DIAYE;Aïssatou;CP",
    "MME;;MARTIN;Julie;1 place de l'Église;74000;Annecy;FRANCE;julie.martin@example.org;;;;;;"
    "MARTIN;Zoé;CM1-CM2",
    "M.;;DURAND;Paul;5 rue Sommeiller;74000;Annecy;FRANCE;;;;;07 00 00 00 01;;DURAND;Hugo;",
    final=False,
).encode("iso-8859-1")

BE1D_TEACHERS = _lines(
    '"Civilité";"Nom usage";"Nom";"Prénom";"Adresse";"CP";"Commune";"Pays";"Courriel";'
    '"Téléphone domicile";"Téléphone portable";"Directeur";"Classe";"Classe"',
    '"MME";;"FAVRE";"Claire";;;;;"claire.favre@ac-grenoble.example.org";;;"non";"CE1 Mme Favre";',
    '"M.";;"ROUX";"Olivier";;;;;;;;"oui";"CM1-CM2";"CP"',
).encode("iso-8859-1")

BE1D = {
    "CSVExtraction-eleves.csv": BE1D_PUPILS,
    "CSVExtraction-responsables.csv": BE1D_PARENTS,
    "Enseignants.csv": BE1D_TEACHERS,
}

# --- with INE -------------------------------------------------------------------------------

INE_PUPILS = _lines(
    "Nom élève;Nom d'usage élève;Prénom élève;Date naissance;Sexe;INE;Adresse1;Cp1;Commune1;"
    "Pays1;Adresse2;Cp2;Commune2;Pays2; Cycle;Niveau;Libellé classe;Identifiant classe;"
    "Attestation fournie;Autorisation associations;Autorisation photo;Décision de passage;"
    "Dispositif(s)",
    "MARTIN;;Martin;01/01/2017;M;1111111111A;1 rue de Test;54000;Nancy;FRANCE;;;;;CYCLE II;"
    "CE2;Classe de M. Machin;99999;Non;Non;Non;;",
    "MARTIN;;Martine;01/01/2018;F;1111111112A;1 rue de Test;54000;Nancy;FRANCE;;;;;CYCLE II;"
    "CE1;Classe de Mme Truc;99998;Non;Non;Non;;ULIS",
    "LŒUILLET;;Chloé;15/05/2016;F;2222222222B;2 rue de Test;54000;Nancy;FRANCE;;;;;CYCLE III;"
    "CM1;Classe de Mme Curie;99997;Oui;Oui;Oui;;",
    final=False,
).encode("cp1252")

INE_PARENTS = _lines(
    '"Civilité Responsable";"Nom usage responsable";"Nom responsable";"Prénom responsable";'
    '"Adresse responsable";"CP responsable";"Commune responsable";"Pays";"Courriel";'
    '"Téléphone domicile";"Téléphone travail";"Téléphone portable";'
    + '"Nom d\'usage enfant";"Nom de famille enfant";"Prénom enfant";"Classes enfants";' * 2
    + '"Nom d\'usage enfant";"Nom de famille enfant";"Prénom enfant";"Classes enfants"',
    '"M.";;"MARTIN";"Jean";"1 rue de Test";"54000";"Nancy";"FRANCE";"jean.martin@example.org";;;;'
    ';"MARTIN";"Martin";"CLASSE  CE2";;"MARTIN";"Martine";"CLASSE  CE1";;;;',
    '"MME";;"MARTINE";"Jeanne";"1 rue de Test";"54000";"Nancy";"FRANCE";;;;;;"MARTIN";"Martin";'
    '"CLASSE  CE2";;;;;;;;',
    '"MME";"LŒUILLET";"BERNARD";"Anne";"2 rue de Test";"54000";"Nancy";"FRANCE";'
    '"anne.bernard@example.org";;;"06 00 00 00 02";;"LŒUILLET";"Chloé";"CLASSE  CM1";;;;;;;;',
).encode("cp1252")

INE_TEACHERS = BOM + _lines(
    "Civilité;Nom usage;Nom;Prénom;Courriel;Directeur;Classe",
    "M.;;MACHIN;Pierre;pierre.machin@example.org;Oui;Classe de M. Machin",
    "MME;;TRUC;Hélène;;Non;Classe de Mme Truc",
).encode("utf-8")

WITH_INE = {
    "CSVExtraction-eleves.csv": INE_PUPILS,
    "CSVExtraction-responsables.csv": INE_PARENTS,
    "Enseignants.csv": INE_TEACHERS,
}

# --- parents since 2021 ---------------------------------------------------------------------

PUPILS_2021 = BOM + _lines(
    '"Nom élève";"Nom d\'usage élève";"Prénom élève";"Date naissance";"Sexe";"INE";" Cycle";'
    '"Niveau";"Libellé classe";"Identifiant classe";"Décision de passage"',
    '"ROY";;"Léo";"04/03/2018";"M";"3333333333C";"CYCLE II";"CE1";"CE1 A";"1201";',
    '"ROY";;"Léo";"22/11/2018";"M";"3333333334D";"CYCLE II";"CE1";"CE1 B";"1202";',
    '"ROY";;"Inès";"10/06/2016";"F";"3333333335E";"CYCLE III";"CM1";"CM1";"1203";',
    '"SAINT-JEAN";"DUBOIS";"Éloïse";"30/09/2019";"F";"3333333336F";"CYCLE II";"CP";"CP";"1204";',
).encode("utf-8")

PARENTS_2021 = BOM + _lines(
    '"Civilité Responsable";"Nom usage responsable";"Nom responsable";"Prénom responsable";'
    '"Adresse responsable";"CP responsable";"Commune responsable";"Pays";"Courriel";'
    '"Téléphone domicile";"Téléphone travail";"Téléphone portable";"PCS";'
    '"Communication adresses";"Nom d\'usage élève";"Nom de famille élève";"Prénom élève";'
    '"Date de naissance élève";"Classes élèves"',
    # Karim ROY: father of the first Léo and of Inès, one row each.
    '"M.";;"ROY";"Karim";"4 rue des Écoles";"51100";"Reims";"FRANCE";"karim.roy@example.org";;;'
    '"06 00 00 00 03";"Cadres";"Oui";;"ROY";"Léo";"04/03/2018";"CLASSE  CE1"',
    '"M.";;"ROY";"Karim";"4 rue des Écoles";"51100";"Reims";"FRANCE";"karim.roy@example.org";;;'
    '"06 00 00 00 03";"Cadres";"Oui";;"ROY";"Inès";"10/06/2016";"CLASSE  CM1"',
    # Nadia ROY, mother of the other Léo, no email.
    '"MME";;"ROY";"Nadia";"9 avenue de Laon";"51100";"Reims";"FRANCE";;;;"07 00 00 00 04";'
    '"Employés";"Non";;"ROY";"Léo";"22/11/2018";"CLASSE  CE1"',
    # A grandmother who names a Léo ROY without his birth date: which one?
    '"MME";;"ROY";"Simone";"1 rue Cérès";"51100";"Reims";"FRANCE";"simone.roy@example.org";;;;'
    '"Retraités";"Non";;"ROY";"Léo";;"CLASSE  CE1"',
    '"MME";"DUBOIS";"SAINT-JEAN";"Marie";"2 place Drouet d\'Erlon";"51100";"Reims";"FRANCE";'
    '"marie.dubois@example.org";;;;"Cadres";"Oui";"DUBOIS";"SAINT-JEAN";"Éloïse";"30/09/2019";'
    '"CLASSE  CP"',
).encode("utf-8")

TEACHERS_2021 = _lines(
    "Civilité;Nom usage;Nom;Prénom;Courriel;Directeur;Classe 1;Classe 2",
    "MME;;LEMAIRE;Agnès;agnes.lemaire@example.org;Oui;CE1 A;CE1 B",
    "M.;;HENRY;Rémi;;Non;CM1;",
    final=False,
).encode("iso-8859-1")

PARENTS_2021_DROP = {
    "CSVExtraction.csv": PUPILS_2021,
    "CSVExtraction(1).csv": PARENTS_2021,
    "CSVExtraction-enseignants.csv": TEACHERS_2021,
}

# --- the later child columns ----------------------------------------------------------------

PARENTS_LATER = _lines(
    "Civilité Responsable;Nom usage responsable;Nom responsable;Prénom responsable;Courriel;"
    "PCS;Communication adresses;Classes de l'élève;Nom de l'élève;Prénom de l'élève",
    "M.;;ROY;Karim;karim.roy@example.org;Cadres;Oui;CE1 A;ROY;Léo",
    "M.;;ROY;Karim;karim.roy@example.org;Cadres;Oui;CM1;ROY;Inès",
    end="\n",
).encode("iso-8859-1")

PARENTS_LATER_DROP = {
    "CSVExtraction.csv": PUPILS_2021,
    "CSVExtraction(2).csv": PARENTS_LATER,
}
