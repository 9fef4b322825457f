// Report data of the bundled fixtures (Sources/GraphSimulator/Fixtures), as literals so that the
// pure tests do no I/O.

enum FixtureCSV {
    static let smallEmailPeriod = #"""
    Report Refresh Date,User Principal Name,Display Name,Is Deleted,Deleted Date,Last Activity Date,Send Count,Receive Count,Read Count,Meeting Created Count,Meeting Interacted Count,Assigned Products,Report Period
    2025-06-28,adele.vance@contoso.com,Adele Vance,False,,2025-06-28,42,310,288,3,9,MICROSOFT 365 E5,7
    2025-06-28,alex.wilber@contoso.com,"Wilber, Alex",False,,2025-06-28,17,204,150,0,4,OFFICE 365 E3+MICROSOFT TEAMS EXPLORATORY,7
    2025-06-28,diego.siciliani@contoso.com,Diego Siciliani,False,,2025-06-26,8,97,61,1,2,OFFICE 365 E3,7
    2025-06-28,grady.archie@contoso.com,Grady Archie,False,,2025-06-21,2,45,12,0,0,OFFICE 365 E1,7
    2025-06-28,isaiah.langer@contoso.com,Isaiah Langer,False,,,,,,,,OFFICE 365 E1,7
    2025-06-28,jérôme.müller@contoso.com,Jérôme Müller,False,,2025-06-28,55,402,399,6,11,MICROSOFT 365 E5,7
    2025-06-28,johanna.lorenz@contoso.com,Johanna Lorenz,False,,2025-06-28,12,88,0,0,1,MICROSOFT 365 BUSINESS STANDARD,7
    2025-06-28,lee.gu@contoso.com,Lee Gu,False,,2025-06-28,0,71,64,0,0,MICROSOFT 365 BUSINESS STANDARD,7
    2025-06-28,lidia.holloway@contoso.com,Lidia Holloway,True,2025-06-25,2025-06-24,5,30,28,0,0,,7
    2025-06-28,megan.bowen@contoso.com,Megan Bowen,False,,2025-06-28,131,655,640,14,25,MICROSOFT 365 E5,7
    2025-06-28,nestor.wilke@contoso.com,Nestor Wilke,False,,2025-06-27,21,160,158,2,6,OFFICE 365 E3,7
    2025-06-28,patti.fernandez@contoso.com,"Fernandez, Patti ""PF""",False,,2025-06-28,3,51,49,0,0,OFFICE 365 E3,7
    """#

    static let smallEmailDaily = #"""
    Report Refresh Date,User Principal Name,Display Name,Is Deleted,Deleted Date,Last Activity Date,Send Count,Receive Count,Read Count,Meeting Created Count,Meeting Interacted Count,Assigned Products,Report Period
    2025-06-28,adele.vance@contoso.com,Adele Vance,False,,2025-06-28,7,51,44,1,2,MICROSOFT 365 E5,1
    2025-06-28,alex.wilber@contoso.com,"Wilber, Alex",False,,2025-06-28,3,25,20,0,1,OFFICE 365 E3+MICROSOFT TEAMS EXPLORATORY,1
    2025-06-28,jérôme.müller@contoso.com,Jérôme Müller,False,,2025-06-28,12,40,38,2,3,MICROSOFT 365 E5,1
    2025-06-28,johanna.lorenz@contoso.com,Johanna Lorenz,False,,2025-06-28,4,17,,0,0,MICROSOFT 365 BUSINESS STANDARD,1
    2025-06-28,lee.gu@contoso.com,Lee Gu,False,,2025-06-28,0,15,0,0,0,MICROSOFT 365 BUSINESS STANDARD,1
    2025-06-28,megan.bowen@contoso.com,Megan Bowen,False,,2025-06-28,25,120,110,4,6,MICROSOFT 365 E5,1
    2025-06-28,patti.fernandez@contoso.com,"Fernandez, Patti ""PF""",False,,2025-06-28,1,9,9,0,0,OFFICE 365 E3,1
    """#

    static let smallMailbox = #"""
    Report Refresh Date,User Principal Name,Display Name,Is Deleted,Deleted Date,Created Date,Last Activity Date,Item Count,Storage Used (Byte),Issue Warning Quota (Byte),Prohibit Send Quota (Byte),Prohibit Send/Receive Quota (Byte),Deleted Item Count,Deleted Item Size (Byte),Deleted Item Quota (Byte),Has Archive,Recipient Type,Report Period
    2025-06-28,adele.vance@contoso.com,Adele Vance,False,,2021-03-04,2025-06-28,15234,2147483648,105226698752,106300440576,107374182400,311,45678901,32212254720,True,User,7
    2025-06-28,alex.wilber@contoso.com,"Wilber, Alex",False,,2021-03-04,2025-06-28,48211,52800000000,52613349376,53150220288,53687091200,1200,734003200,32212254720,False,User,7
    2025-06-28,diego.siciliani@contoso.com,Diego Siciliani,False,,2021-05-17,2025-06-26,8120,734003200,105226698752,106300440576,107374182400,52,1048576,32212254720,False,User,7
    2025-06-28,grady.archie@contoso.com,Grady Archie,False,,2022-01-10,2025-06-21,212,1572864,52613349376,53150220288,53687091200,0,0,32212254720,False,User,7
    2025-06-28,helpdesk@contoso.com,"Helpdesk, Contoso",False,,2020-11-02,2025-06-28,90211,3221225472,52613349376,53150220288,53687091200,4100,268435456,32212254720,False,Shared,7
    2025-06-28,isaiah.langer@contoso.com,Isaiah Langer,False,,2025-06-20,,,,52613349376,53150220288,53687091200,,,32212254720,False,User,7
    2025-06-28,jérôme.müller@contoso.com,Jérôme Müller,False,,2019-08-30,2025-06-28,301112,53200000000,52613349376,53150220288,53687091200,9102,2147483648,32212254720,True,User,7
    2025-06-28,johanna.lorenz@contoso.com,Johanna Lorenz,False,,2023-02-14,2025-06-28,3,1023,105226698752,106300440576,107374182400,0,0,32212254720,False,User,7
    2025-06-28,lee.gu@contoso.com,Lee Gu,False,,2023-02-14,2025-06-28,1,1024,105226698752,106300440576,107374182400,0,0,32212254720,False,User,7
    2025-06-28,lidia.holloway@contoso.com,Lidia Holloway,True,2025-06-25,2020-01-08,2025-06-24,1800,10485760,52613349376,53150220288,53687091200,12,20480,32212254720,False,User,7
    2025-06-28,megan.bowen@contoso.com,Megan Bowen,False,,2018-10-01,2025-06-28,250000,107374182401,105226698752,106300440576,107374182400,20311,5368709120,32212254720,True,User,7
    2025-06-28,nestor.wilke@contoso.com,Nestor Wilke,False,,2021-05-17,2025-06-27,9021,99999999,105226698752,106300440576,107374182400,101,2000000,32212254720,False,User,7
    2025-06-28,patti.fernandez@contoso.com,"Fernandez, Patti ""PF""",False,,2022-09-09,2025-06-28,4410,5000000000,,,,77,123456,,False,User,7
    2025-06-28,room-boardroom@contoso.com,Boardroom,False,,2020-11-02,2025-06-18,120,104857,52613349376,53150220288,53687091200,0,0,32212254720,False,Room,7
    """#

    static let overquotaMailbox = #"""
    Report Refresh Date,User Principal Name,Display Name,Is Deleted,Deleted Date,Created Date,Last Activity Date,Item Count,Storage Used (Byte),Issue Warning Quota (Byte),Prohibit Send Quota (Byte),Prohibit Send/Receive Quota (Byte),Deleted Item Count,Deleted Item Size (Byte),Deleted Item Quota (Byte),Has Archive,Recipient Type,Report Period
    2025-06-28,ana.silva@tailspin.example,Ana Silva,False,,2019-04-01,2025-06-28,120044,52700000000,52613349376,53150220288,53687091200,500,100000000,32212254720,False,User,7
    2025-06-28,bo.chen@tailspin.example,"Chen, Bo",False,,2019-04-01,2025-06-28,230501,53300000000,52613349376,53150220288,53687091200,800,200000000,32212254720,True,User,7
    2025-06-28,chloé.dubois@tailspin.example,Chloé Dubois,False,,2020-02-11,2025-06-28,402113,53800000000,52613349376,53150220288,53687091200,12000,3000000000,32212254720,True,User,7
    2025-06-28,sean.o'neill@tailspin.example,Seán O'Neill,False,,2018-07-23,2025-06-28,999999,110000000000,105226698752,106300440576,107374182400,40000,9000000000,32212254720,True,User,7
    2025-06-28,finance@tailspin.example,"Finance, Shared",False,,2017-01-05,2025-06-28,88001,52650000000,52613349376,53150220288,53687091200,0,0,32212254720,False,Shared,7
    2025-06-28,old.archive@tailspin.example,Old Archive,False,,2016-03-30,2025-06-02,501777,54000000000,52613349376,53150220288,53687091200,0,0,32212254720,False,Shared,7
    """#

    static let emptyEmailPeriod = #"""
    Report Refresh Date,User Principal Name,Display Name,Is Deleted,Deleted Date,Last Activity Date,Send Count,Receive Count,Read Count,Meeting Created Count,Meeting Interacted Count,Assigned Products,Report Period
    """#

    static let emptyMailbox = #"""
    Report Refresh Date,User Principal Name,Display Name,Is Deleted,Deleted Date,Created Date,Last Activity Date,Item Count,Storage Used (Byte),Issue Warning Quota (Byte),Prohibit Send Quota (Byte),Prohibit Send/Receive Quota (Byte),Deleted Item Count,Deleted Item Size (Byte),Deleted Item Quota (Byte),Has Archive,Recipient Type,Report Period
    """#

    /// As Graph serves it: BOM and CRLF line ends.
    static func served(_ text: String) -> [UInt8] {
        [0xEF, 0xBB, 0xBF] + Array((text.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\r\n") + "\r\n").utf8)
    }
}
